"""Spring (Mehl et al. 2023), train split with ground truth.

Layout (``docs/datasets.md``)::

    ROOT/train/<scene>/frame_left/frame_left_%04d.png          # 1920x1080, 1-based index
    ROOT/train/<scene>/flow_FW_left/flow_FW_left_%04d.flo5     # frame i -> i+1 at 3840x2160

The ground truth is at twice the image resolution in image-pixel units; by default it is subsampled
``[::2, ::2]`` (spring_utils / SEA-RAFT / FlowSeek). ``full_resolution_gt=True`` keeps all four candidates
per pixel for the benchmark's minimum-over-candidates metric (``flow_metrics(..., spring_min=True)``).
NaN ground truth is invalid. SEA-RAFT's validation scenes are ``SPRING_VAL_SCENES``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from daflow.data.base import (
    ClipDataset,
    DatasetLayoutError,
    natural_key,
    require_all,
    require_choice,
    require_dir,
    select_scenes,
    sequence_items,
)
from daflow.flow.io import read_flow

SPRING_VAL_SCENES = ("0045", "0047")


class Spring(ClipDataset):
    name = "spring"

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        split: str = "train",
        camera: str = "left",
        num_frames: int = 2,
        stride: int = 1,
        scenes: list[str] | tuple[str, ...] | None = None,
        full_resolution_gt: bool = False,
        transform=None,
    ):
        require_choice(camera, ("left", "right"), "Spring camera")
        require_choice(split, ("train", "test"), "Spring split")
        self.root = Path(root)
        self.full_resolution_gt = full_resolution_gt
        split_root = require_dir(self.root / split, "Spring split folder with <scene>/frame_left/frame_left_0001.png")
        has_gt = split == "train"
        items = []
        for scene in select_scenes(split_root, scenes, "Spring"):
            frame_dir = require_dir(scene / f"frame_{camera}", f"Spring scene {scene.name} frames")
            frames = sorted(frame_dir.glob(f"frame_{camera}_*.png"), key=natural_key)
            if not frames:
                raise DatasetLayoutError(f"Spring: no frame_{camera}_*.png in {frame_dir}")
            flows = None
            if has_gt:
                flow_dir = require_dir(scene / f"flow_FW_{camera}", f"Spring scene {scene.name} forward flow")
                flows = [flow_dir / f"flow_FW_{camera}_{f.stem.rsplit('_', 1)[1]}.flo5" for f in frames[:-1]]
                require_all(flows, "Spring")
            items += sequence_items(frames, flows, {"scene": scene.name, "camera": camera}, num_frames, stride)
        super().__init__(items, transform=transform)

    def read_gt(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        flow, valid = read_flow(path)
        if self.full_resolution_gt:
            return flow, valid
        return np.ascontiguousarray(flow[::2, ::2]), np.ascontiguousarray(valid[::2, ::2])
