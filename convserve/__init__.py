"""ConvServe for its users: ``convserve.client`` talks to a running service."""
