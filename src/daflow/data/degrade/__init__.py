"""LQ synthesis: RealBasicVSR-style clip degradation (Real-ESRGAN second order + video compression).

- ``config``   ranges and probabilities, named presets (``realbasicvsr`` default, ``realesrgan``, ``star``,
               ``mild``, ``severe``);
- ``params``   ``DegradationParams`` sampled once per clip from a seed, JSON round trip;
- ``kernels``  blur kernels; ``ops`` the individual operations; ``pipeline`` ``degrade_clip``;
- ``mirror``   degrading whole datasets into a mirror tree with a manifest (``daflow degrade``).
"""

from daflow.data.degrade.config import DEGRADATION_PRESETS, DegradationConfig, get_preset
from daflow.data.degrade.params import DegradationParams, sample_params
from daflow.data.degrade.pipeline import degrade_clip

__all__ = ["DEGRADATION_PRESETS", "DegradationConfig", "DegradationParams", "degrade_clip", "get_preset", "sample_params"]
