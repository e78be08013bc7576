"""ConvServe's inference service (FastAPI + ONNX Runtime). No torch import anywhere in it."""

__version__ = "0.1.0"
