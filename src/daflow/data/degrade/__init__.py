"""LQ synthesis: RealBasicVSR-style clip degradation (Real-ESRGAN second order + video compression).

- ``config``   ranges and probabilities, named presets (``realbasicvsr`` default, ``realesrgan``, ``star``,
               ``mild``, ``severe``, ``codec``);
- ``params``   ``DegradationParams`` sampled once per clip from a seed, JSON round trip;
- ``kernels``  blur kernels; ``ops`` the individual operations; ``pipeline`` ``degrade_clip``;
- ``mirror``   degrading whole datasets into a mirror tree with a manifest (``daflow degrade``).

The names below are loaded on first use (PEP 562): ``config`` alone imports nothing heavy.
"""

from daflow.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "daflow.data.degrade.config": ("DEGRADATION_PRESETS", "DegradationConfig", "get_preset"),
        "daflow.data.degrade.params": ("DegradationParams", "sample_params"),
        "daflow.data.degrade.pipeline": ("degrade_clip",),
    },
)
