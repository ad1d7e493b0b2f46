"""Datasets: every reader yields :class:`~daflow.data.base.FlowSample` (frames, flow, valid, metadata).

The names below are loaded on first use (PEP 562), so that importing a light submodule such as
``daflow.data.degrade.config`` does not load torch.
"""

from daflow.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "daflow.data.base": ("DatasetLayoutError", "FlowSample"),
        "daflow.data.sintel": ("Sintel",),
        "daflow.data.spring": ("Spring",),
        "daflow.data.synthetic": ("SYNTHETIC_PRESETS", "SyntheticClips", "SyntheticConfig", "render_clip"),
        "daflow.data.tartanair": ("TartanAir",),
        "daflow.data.video": ("FrameSource", "VideoFrames", "read_video", "write_video"),
        "daflow.data.youhq": ("YouHQ",),
    },
)
