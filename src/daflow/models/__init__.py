"""Flow models. ``classical``: OpenCV DIS and Farnebäck references."""
