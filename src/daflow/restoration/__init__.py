"""Video restoration (paper App. C.4), one concept a module:

- :mod:`.video`        ``restore_video``: chunks or windows of a video, resumable, the ``daflow restore`` pipeline;
- :mod:`.diffusion`    the lifted DiT4SR's samplers (one-step and full) on one chunk;
- :mod:`.guidance`     MGLD-style motion guidance: the flow-warping loss and its gradient step;
- :mod:`.temporal`     the classical flow-guided temporal filter;
- :mod:`.consistency`  how restored video is scored: E*warp (Lai et al.), PSNR, SSIM.
"""

from daflow.restoration.diffusion import SAMPLERS, chunk_plan, clip_flows, restore_chunk, restore_clip
from daflow.restoration.temporal import TemporalSettings, filter_window, neighbour_flows, temporal_filter
from daflow.restoration.video import METHODS, RestoreReport, RestoreSettings, restore_video

__all__ = [
    "METHODS",
    "SAMPLERS",
    "RestoreReport",
    "RestoreSettings",
    "TemporalSettings",
    "chunk_plan",
    "clip_flows",
    "filter_window",
    "neighbour_flows",
    "restore_chunk",
    "restore_clip",
    "restore_video",
    "temporal_filter",
]
