"""Floor 4, what a run leaves behind: one JSON record schema (``records``), JSON / CSV / NPZ writers
(``files``), BVH read and write (``bvh``), glTF (``gltf``), live VMC/OSC streaming (``vmc``), the overlay video (``video``), the Rerun viewer and
overlays (``visualizer``), the run's sinks with their periodic complete publications (``sinks``), run
summaries (``summary``), whole-file writes (``atomic``) and stop signals that never cut a file (``signals``)."""
