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


#: ``stride`` value for chunks of ``num_frames`` frames that share their boundary frame and give every consecutive
#: pair exactly once (DA-Flow's 3-frame inference chunks, App. A.0.4); the last chunk is moved back to end on the
#: last frame and its already-covered pairs are marked in ``meta["first_pair"]``.
CHUNKS = 0


def window_plan(length: int, num_frames: int, stride: int) -> list[tuple[int, int]]:
    """``(start, first new pair)`` of every window: sliding windows ``stride`` apart, or :data:`CHUNKS`."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if stride < 0:
        raise ValueError(f"stride must be >= 1 (or CHUNKS = 0), got {stride}")
    if stride != CHUNKS:
        return [(s, 0) for s in range(0, max(length - num_frames + 1, 0), stride)]
    if length < num_frames:
        return []
    step = max(num_frames - 1, 1)
    plan = [(s, 0) for s in range(0, length - num_frames + 1, step)]
    covered = plan[-1][0] + step  # pairs 0 .. covered-1 are in some window
    if covered < length - 1:
        start = length - num_frames
        plan.append((start, covered - start))
    return plan


def require_choice(value: str, choices: Sequence[str], what: str) -> str:
    """``value`` when it is one of ``choices``; a ``ValueError`` naming ``what`` and the choices otherwise."""
    if value not in choices:
        raise ValueError(f"{what} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


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
    for s, first_pair in window_plan(len(frames), num_frames, stride):
        e = s + num_frames - 1
        items.append(
            ClipItem(
                frames=tuple(frames[s : e + 1]),
                flows=tuple(flows[s:e]) if flows is not None else None,
                occlusions=tuple(occlusions[s:e]) if occlusions is not None else None,
                meta={**meta, "frames": names[s : e + 1], "first_pair": first_pair},
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
