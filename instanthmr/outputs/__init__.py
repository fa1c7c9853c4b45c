"""Floor 4, what a run leaves behind: JSON / CSV / NPZ (``files``), BVH read and write (``bvh``), the Rerun
viewer and overlays (``visualizer``)."""
