"""daflow: DA-Flow, degradation-aware optical flow estimation with diffusion models (arXiv 2603.23499).

Where things live (one concept per module):

- ``daflow.flow``      flow files (``io``), metrics (EPE, N-px outliers, warping error), warping, colour wheel.
- ``daflow.data``      dataset readers (Sintel, Spring, TartanAir, YouHQ, any video) and exact-ground-truth
                       synthetic clips.
- ``daflow.models``    every flow model (RAFT, SEA-RAFT, DA-Flow, the DIS→RAFT default), DiT4SR, the VAE, sampler.
- ``daflow.train``     the training stages and recipes; ``daflow.eval`` benchmarks, analysis, reports.
- ``daflow.cli``       the ``daflow`` command, one module per sub-command.

``daflow.load_model(name_or_path, device=..., **options)`` loads any flow model behind one call convention and
``daflow.evaluate(model, data_spec)`` scores it (:mod:`daflow.api`); both are imported on first use, so
``import daflow`` stays light.
"""

from daflow.lazy import lazy_exports

__version__ = "0.1.0"

__all__ = ["__version__", "evaluate", "load_model"]

__getattr__, _ = lazy_exports("daflow", {"daflow.api": ("evaluate", "load_model")})
