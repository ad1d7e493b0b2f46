"""Clips paired with flow labels from another tree: LQ frames + teacher pseudo ground truth (paper §4.3, §4.4).

The paper's feature analysis and stage-2 training read degraded YouHQ frames (a ``daflow degrade`` mirror) and
SEA-RAFT's flow on the HQ frames (``daflow pseudo-gt``). The two trees share their clip paths:

- ``LQ_ROOT/<clip>/`` (frame folder; a mirrored video ``<clip>.mp4`` becomes ``<clip>/frame_%06d.png``) or
  ``LQ_ROOT/<clip>.mp4`` (a video);
- ``LABELS/<clip>/<name>.{flo,flo5,npy}``: the flow from frame k to frame k+1, k = 0..n−2 (:func:`label_dir`).

Frame and label names need not agree (pseudo-gt names video frames ``000000``, the mirror ``frame_000000``):
frames and labels are paired **by index** in natural order, and a clip whose label count is not its frame count
minus one is an error naming both folders.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from daflow.data.base import DatasetLayoutError, FlowSample, natural_key, window_plan
from daflow.data.video import FrameSource, is_video_file, window_meta
from daflow.flow.io import read_flow

LABEL_SUFFIXES = (".flo", ".flo5", ".npy")


def label_dir(root: Path, clip: Path, out: Path) -> Path:
    """Where the labels of ``clip`` live: its path relative to ``root`` (video suffix dropped) below ``out``."""
    rel = clip.relative_to(root) if clip != root else Path(".")
    if is_video_file(clip):
        rel = rel.with_suffix("")
    return out / rel


def _holds_frames(folder: Path) -> bool:
    from daflow.files import IMAGE_EXTENSIONS

    return any(p.suffix.lower() in IMAGE_EXTENSIONS for p in folder.iterdir() if p.is_file())


def find_clip_roots(root: Path) -> list[Path]:
    """``root`` itself when it is one video or frame folder, else every clip below it (natural order)."""
    from daflow.data.youhq import find_clips

    if is_video_file(root) or (root.is_dir() and _holds_frames(root)):
        return [root]
    return find_clips(root)


class LabeledClips(Sequence):
    """F-frame windows of every clip below ``lq_root`` with the flow labels of ``labels_root``."""

    name = "labeled"

    def __init__(
        self,
        lq_root: str | os.PathLike[str],
        labels_root: str | os.PathLike[str],
        *,
        num_frames: int = 2,
        stride: int = 1,
        transform=None,
    ):
        self.lq_root, self.labels_root = Path(lq_root), Path(labels_root)
        if not self.lq_root.exists():
            raise DatasetLayoutError(f"labeled: LQ clips not found: {self.lq_root}")
        if not self.labels_root.is_dir():
            raise DatasetLayoutError(
                f"labeled: label folder not found: {self.labels_root} (written by daflow pseudo-gt)"
            )
        clips = find_clip_roots(self.lq_root)
        if not clips:
            raise DatasetLayoutError(f"labeled: no videos or frame folders below {self.lq_root}")
        self.num_frames, self.transform = num_frames, transform
        self.windows: list[tuple[FrameSource, list[Path], int, int]] = []
        for clip in clips:
            source = FrameSource(clip)
            folder = label_dir(self.lq_root, clip, self.labels_root)
            labels = (
                sorted((p for p in folder.iterdir() if p.suffix.lower() in LABEL_SUFFIXES), key=natural_key)
                if folder.is_dir()
                else []
            )
            if len(labels) != len(source) - 1:
                raise DatasetLayoutError(
                    f"labeled: {clip} has {len(source)} frames, so {len(source) - 1} flow files "
                    f"were expected in {folder}; found {len(labels)}"
                )
            self.windows += [(source, labels, s, first) for s, first in window_plan(len(source), num_frames, stride)]
        if not self.windows:
            raise DatasetLayoutError(f"labeled: no clip below {self.lq_root} has {num_frames} frames")

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int):  # type: ignore[override]
        if not -len(self) <= index < len(self):
            raise IndexError(f"{self.name}: index {index} out of range for {len(self)} samples")
        source, labels, start, first_pair = self.windows[index]
        frames = source.read(start, self.num_frames)
        flows, valids = zip(*(read_flow(p) for p in labels[start : start + self.num_frames - 1]))
        if flows[0].shape[:2] != frames.shape[1:3]:
            raise DatasetLayoutError(
                f"labeled: frames of {source.path} are {frames.shape[1]}x{frames.shape[2]} but "
                f"{labels[start]} is {flows[0].shape[0]}x{flows[0].shape[1]}; "
                "degrade with the HQ size kept (the default) or label the LQ frames' size"
            )
        meta = window_meta(self.name, source, start, self.num_frames, first_pair)
        meta["labels"] = [str(p) for p in labels[start : start + self.num_frames - 1]]
        sample = FlowSample(frames=frames, flow=np.stack(flows), valid=np.stack(valids), meta=meta)
        return self.transform(sample) if self.transform else sample

    def __repr__(self) -> str:
        return f"LabeledClips({len(self)} samples, {self.lq_root} + {self.labels_root})"
