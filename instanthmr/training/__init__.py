"""Floor 6, torch: the network (``model``), shards and datasets (``data``, ``dataset``), losses, the trainer,
evaluation, ONNX export with a parity check (``export``) and quantisation (``quantize``)."""
