"""The contract between training and serving: the model repository.

Triton-compatible layout (``<root>/<name>/config.pbtxt``, ``<root>/<name>/<version>/model.onnx``,
``labels.txt``) plus our ``card.json``. Nothing here imports torch: the service uses it as is.
"""
