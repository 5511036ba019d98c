"""One module per simulated Google API; each exposes `register(router)`."""
