"""Floor 0, numpy only: skeletons as data (``skeleton``), geometry of boxes, crops, CLIFF and cameras
(``geometry``), metrics (``metrics``), where things live (``paths``), error helpers (``errors``).
Imports nothing else from the package."""
