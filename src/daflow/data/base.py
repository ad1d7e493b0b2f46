"""What every dataset yields: :class:`FlowSample`, plus the clip-window machinery the readers share.

A dataset is a ``Sequence`` of samples (so ``torch.utils.data.DataLoader`` can use it directly). A sample
is an F-frame clip (F = 2 for the usual frame pairs) with the forward flow of each consecutive pair when
the dataset has ground truth.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from daflow.files import read_image
from daflow.flow.io import read_flow


class DatasetLayoutError(FileNotFoundError):
    """A dataset tree that is missing or does not have the official layout; the message names the expected path."""


@dataclass
class FlowSample:
    """One clip.

    Attributes:
        frames: ``[F, H, W, 3]`` uint8 RGB.
        flow: ``[F-1, H, W, 2]`` float32 forward flow of each pair (k → k+1), or None without ground truth.
        valid: ``[F-1, H, W]`` bool, or None.
        meta: dataset name, scene, frame names, …
        occlusion: ``[F-1, H, W]`` bool (True = occluded in frame k+1), where the dataset provides it.
    """

    frames: np.ndarray
    flow: np.ndarray | None = None
    valid: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    occlusion: np.ndarray | None = None

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])


@dataclass(frozen=True)
class ClipItem:
    """Paths of one clip: ``F`` frames and ``F-1`` flow files (or None)."""

    frames: tuple[Path, ...]
    flows: tuple[Path, ...] | None
    meta: dict[str, Any]
    occlusions: tuple[Path, ...] | None = None


def natural_key(path: Path | str) -> list:
    """Sort key that orders ``frame_2`` before ``frame_10``."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]


def window_starts(length: int, num_frames: int, stride: int) -> range:
    """Start indices of every ``num_frames`` window in a sequence of ``length`` frames."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    return range(0, max(length - num_frames + 1, 0), stride)


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DatasetLayoutError(f"{what}: expected folder {path} not found")
    return path


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DatasetLayoutError(f"{what}: expected file {path} not found")
    return path


def select_scenes(parent: Path, scenes, dataset: str) -> list[Path]:
    """Sub-folders of ``parent`` (all, or those named in ``scenes``), sorted; clear errors otherwise."""
    scene_dirs = sorted(p for p in parent.iterdir() if p.is_dir())
    if scenes is not None:
        unknown = set(scenes) - {p.name for p in scene_dirs}
        if unknown:
            raise DatasetLayoutError(f"{dataset}: scenes {sorted(unknown)} not found under {parent}")
        scene_dirs = [p for p in scene_dirs if p.name in scenes]
    if not scene_dirs:
        raise DatasetLayoutError(f"{dataset}: no scene folders under {parent}")
    return scene_dirs


def require_all(paths: list[Path], dataset: str) -> None:
    """Every ground-truth file must exist; the error names the first missing one."""
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise DatasetLayoutError(f"{dataset}: expected ground truth {missing[0]} not found ({len(missing)} missing)")


def sequence_items(
    frames: list[Path],
    flows: list[Path] | None,
    meta: dict[str, Any],
    num_frames: int,
    stride: int,
    *,
    occlusions: list[Path] | None = None,
    names: list[str] | None = None,
) -> list[ClipItem]:
    """The F-frame windows of one sequence (flows[i] belongs to the pair (i, i+1))."""
    names = names if names is not None else [f.stem for f in frames]
    items = []
    for s in window_starts(len(frames), num_frames, stride):
        e = s + num_frames - 1
        items.append(
            ClipItem(
                frames=tuple(frames[s : e + 1]),
                flows=tuple(flows[s:e]) if flows is not None else None,
                occlusions=tuple(occlusions[s:e]) if occlusions is not None else None,
                meta={**meta, "frames": names[s : e + 1]},
            )
        )
    return items


class ClipDataset(Sequence):
    """A list of :class:`ClipItem` read on demand.

    Subclasses build ``self.items`` and may override :meth:`read_gt` (e.g. Spring's ``[::2, ::2]``).
    """

    name = "clips"

    def __init__(self, items: list[ClipItem], *, transform: Callable[[FlowSample], Any] | None = None):
        self.items = items
        self.transform = transform

    def __len__(self) -> int:
        return len(self.items)

    def read_gt(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        return read_flow(path)

    def __getitem__(self, index: int):  # type: ignore[override]
        if not -len(self) <= index < len(self):
            raise IndexError(f"{self.name}: index {index} out of range for {len(self)} samples")
        item = self.items[index]
        frames = np.stack([read_image(p) for p in item.frames])
        sample = FlowSample(frames=frames, meta=dict(item.meta, dataset=self.name))
        if item.flows is not None:
            gts = [self.read_gt(p) for p in item.flows]
            sample.flow = np.stack([g[0] for g in gts])
            sample.valid = np.stack([g[1] for g in gts])
        if item.occlusions is not None:
            sample.occlusion = np.stack([read_image(p)[:, :, 0] > 0 for p in item.occlusions])
        return self.transform(sample) if self.transform else sample

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} samples)"
