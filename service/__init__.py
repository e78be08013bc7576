"""ConvServe's inference service (FastAPI + ONNX Runtime). No torch import anywhere in it."""
