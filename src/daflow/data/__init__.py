"""Datasets: every reader yields :class:`~daflow.data.base.FlowSample` (frames, flow, valid, metadata)."""

from daflow.data.base import DatasetLayoutError, FlowSample
from daflow.data.sintel import Sintel
from daflow.data.spring import Spring
from daflow.data.synthetic import SYNTHETIC_PRESETS, SyntheticClips, SyntheticConfig, render_clip
from daflow.data.tartanair import TartanAir
from daflow.data.video import FrameSource, VideoFrames, read_video, write_video
from daflow.data.youhq import YouHQ

__all__ = [
    "SYNTHETIC_PRESETS",
    "DatasetLayoutError",
    "FlowSample",
    "FrameSource",
    "Sintel",
    "Spring",
    "SyntheticClips",
    "SyntheticConfig",
    "TartanAir",
    "VideoFrames",
    "YouHQ",
    "read_video",
    "render_clip",
    "write_video",
]
