"""One module per task: decode -> predict -> encode, driven entirely by the model card."""
