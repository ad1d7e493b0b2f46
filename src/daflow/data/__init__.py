"""Datasets: every reader yields :class:`~daflow.data.base.FlowSample` (frames, flow, valid, metadata).

The names below are loaded on first use (PEP 562), so that importing a light submodule such as
``daflow.data.degrade.config`` does not load torch.
"""

import importlib

_EXPORTS = {
    "DatasetLayoutError": "daflow.data.base",
    "FlowSample": "daflow.data.base",
    "Sintel": "daflow.data.sintel",
    "Spring": "daflow.data.spring",
    "SYNTHETIC_PRESETS": "daflow.data.synthetic",
    "SyntheticClips": "daflow.data.synthetic",
    "SyntheticConfig": "daflow.data.synthetic",
    "render_clip": "daflow.data.synthetic",
    "TartanAir": "daflow.data.tartanair",
    "FrameSource": "daflow.data.video",
    "VideoFrames": "daflow.data.video",
    "read_video": "daflow.data.video",
    "write_video": "daflow.data.video",
    "YouHQ": "daflow.data.youhq",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'daflow.data' has no attribute {name!r}")
