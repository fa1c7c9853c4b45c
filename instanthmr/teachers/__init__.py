"""Teachers whose outputs are distilled into the fast network, and their output converters."""
