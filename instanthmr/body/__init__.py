"""Floor 1, the MHR body model: assets and the numpy forward (``mhr``), meshes drawn for the viewer
(``mesh``). ``mhr_torch`` (the differentiable forward and its ONNX export) is the only torch file here and
only training imports it."""
