"""LQ synthesis: RealBasicVSR-style clip degradation (Real-ESRGAN second order + video compression).

- ``config``   ranges and probabilities, named presets (``realbasicvsr`` default, ``realesrgan``, ``star``,
               ``mild``, ``severe``, ``codec``);
- ``params``   ``DegradationParams`` sampled once per clip from a seed, JSON round trip;
- ``kernels``  blur kernels; ``ops`` the individual operations; ``pipeline`` ``degrade_clip``;
- ``mirror``   degrading whole datasets into a mirror tree with a manifest (``daflow degrade``).

The names below are loaded on first use (PEP 562): ``config`` alone imports nothing heavy.
"""

import importlib

_EXPORTS = {
    "DEGRADATION_PRESETS": "daflow.data.degrade.config",
    "DegradationConfig": "daflow.data.degrade.config",
    "get_preset": "daflow.data.degrade.config",
    "DegradationParams": "daflow.data.degrade.params",
    "sample_params": "daflow.data.degrade.params",
    "degrade_clip": "daflow.data.degrade.pipeline",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'daflow.data.degrade' has no attribute {name!r}")
