"""HTTP routes, one module per resource, combined in ``service.app``."""
