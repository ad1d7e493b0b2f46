"""MPI-Sintel (Butler et al. 2012), training set with ground truth, clean or final pass.

Layout (``docs/datasets.md``)::

    ROOT/training/{clean,final}/<scene>/frame_%04d.png
    ROOT/training/flow/<scene>/frame_%04d.flo          # forward flow of frame i -> i+1
    ROOT/training/occlusions/<scene>/frame_%04d.png    # optional, 1 or 255 = occluded

``ROOT`` may also be a degraded mirror written by ``daflow degrade sintel`` (same layout, LQ frames).
Every pixel is valid (RAFT / SEA-RAFT protocol); the ``invalid/`` masks are not used.
"""

from __future__ import annotations

import os
from pathlib import Path

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

SINTEL_PASSES = ("clean", "final")


class Sintel(ClipDataset):
    name = "sintel"

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        dstype: str = "final",
        split: str = "training",
        num_frames: int = 2,
        stride: int = 1,
        scenes: list[str] | None = None,
        transform=None,
    ):
        require_choice(dstype, SINTEL_PASSES, "Sintel pass")
        require_choice(split, ("training", "test"), "Sintel split")
        self.root = Path(root)
        frames_root = require_dir(
            self.root / split / dstype, f"Sintel ({dstype} pass) frames as <scene>/frame_0001.png"
        )
        flow_root = self.root / split / "flow"
        occ_root = self.root / split / "occlusions"
        has_gt = split == "training"
        if has_gt:
            require_dir(flow_root, "Sintel ground truth as <scene>/frame_0001.flo")
        items = []
        for scene_dir in select_scenes(frames_root, scenes, "Sintel"):
            frames = sorted(scene_dir.glob("frame_*.png"), key=natural_key)
            if not frames:
                raise DatasetLayoutError(f"Sintel: no frame_*.png in {scene_dir}")
            flows = [flow_root / scene_dir.name / f"{f.stem}.flo" for f in frames[:-1]] if has_gt else None
            if flows:
                require_all(flows, "Sintel")
            occs = None
            if has_gt and (occ_root / scene_dir.name).is_dir():
                occs = [occ_root / scene_dir.name / f"{f.stem}.png" for f in frames[:-1]]
                if not all(p.is_file() for p in occs):
                    occs = None
            meta = {"scene": scene_dir.name, "pass": dstype}
            items += sequence_items(frames, flows, meta, num_frames, stride, occlusions=occs)
        super().__init__(items, transform=transform)
