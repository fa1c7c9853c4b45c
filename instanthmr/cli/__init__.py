"""Floor 7, command lines: ``demo``, ``doctor`` and every tool. ``demo.py`` and ``tools/*.py`` at the
repository root are thin wrappers around these modules; pyproject.toml installs them as console scripts."""
