"""Training, evaluation and ONNX export of ConvServe's networks (needs the [train] extra)."""
