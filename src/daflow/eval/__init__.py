"""Evaluation: dataset specs (``datasets``), running a model over a benchmark and its tables (``benchmark``)."""
