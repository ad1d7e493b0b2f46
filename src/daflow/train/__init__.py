"""Training: losses (``losses``)."""
