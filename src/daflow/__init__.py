"""daflow: DA-Flow, degradation-aware optical flow estimation with diffusion models (arXiv 2603.23499).

Where things live (one concept per module):

- ``daflow.flow``      flow files (``io``), metrics (EPE, N-px outliers, warping error), warping, colour wheel.
- ``daflow.data``      dataset readers (Sintel, Spring, TartanAir, YouHQ, any video) and exact-ground-truth
                       synthetic clips.
- ``daflow.cli``       the ``daflow`` command.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
