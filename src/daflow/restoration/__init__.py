"""Video restoration (paper App. C.4): ``restore_video`` (:mod:`.video`) with the lifted DiT4SR and motion guidance
(:mod:`.diffusion`) or the classical flow-guided temporal filter (:mod:`.temporal`)."""

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
