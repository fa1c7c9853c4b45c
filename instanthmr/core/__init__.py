"""Floor 0, numpy only: skeletons as data (``skeleton``), geometry of boxes, crops, CLIFF and cameras
(``geometry``), rotation conventions (``rotations``), metrics (``metrics``) and the motion-capture reader
their ground truth comes from (``mocap``), where things live (``paths``), error helpers (``errors``), and the
standard-library fault handling every tool shares (``faults``: stop signals, atomic writes, output-path
checks, damaged video). Imports nothing else from the package."""
