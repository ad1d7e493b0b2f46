"""TartanAir v1 (Wang et al. 2020) with FlowSeek's validation split.

Layout (``docs/datasets.md``); trajectory folders are found wherever they sit below
``ROOT`` (extraction sometimes adds an ``<ENV>/`` level) by holding both ``image_left/`` and ``flow/``::

    <ENV>/<Easy|Hard>/P###/image_left/%06d_left.png
    <ENV>/<Easy|Hard>/P###/flow/%06d_%06d_flow.npy   +   %06d_%06d_mask.npy   (valid = mask < 100)

Split ``val`` (FlowSeek): trajectories whose path contains ``westerndesert`` or ``soulcity``; all their
consecutive pairs concatenated in sorted order, then every 100th. ``train`` is every other trajectory,
``all`` every trajectory (``every`` defaults to 1 for both).
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
    sequence_items,
)

TARTANAIR_VAL_ENVS = ("westerndesert", "soulcity")


def find_trajectories(root: Path) -> list[Path]:
    """Every folder below ``root`` with ``image_left/`` and ``flow/`` children, sorted."""
    found = []
    for dirpath, dirnames, _ in os.walk(root):
        if "image_left" in dirnames and "flow" in dirnames:
            found.append(Path(dirpath))
            dirnames.clear()
    return sorted(found, key=natural_key)


class TartanAir(ClipDataset):
    name = "tartanair"

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        split: str = "val",
        every: int | None = None,
        num_frames: int = 2,
        stride: int = 1,
        transform=None,
    ):
        require_choice(split, ("val", "train", "all"), "TartanAir split")
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetLayoutError(f"TartanAir: expected folder {self.root} not found")
        trajs = find_trajectories(self.root)
        if not trajs:
            raise DatasetLayoutError(
                f"TartanAir: no trajectory folder (with image_left/ and flow/) below {self.root}; "
                "expected <ENV>/<Easy|Hard>/P###/image_left/000000_left.png"
            )

        def is_val(p: Path) -> bool:
            rel = str(p.relative_to(self.root)).lower()
            return any(env in rel for env in TARTANAIR_VAL_ENVS)

        if split == "val":
            trajs = [t for t in trajs if is_val(t)]
        elif split == "train":
            trajs = [t for t in trajs if not is_val(t)]
        if not trajs:
            raise DatasetLayoutError(
                f"TartanAir: no trajectory of split {split!r} below {self.root} (val = {TARTANAIR_VAL_ENVS})"
            )
        every = every if every is not None else (100 if split == "val" else 1)
        items = []
        for traj in trajs:
            frames = sorted((traj / "image_left").glob("*_left.png"), key=natural_key)
            ids = [f.name.split("_")[0] for f in frames]
            flows = [traj / "flow" / f"{a}_{b}_flow.npy" for a, b in zip(ids[:-1], ids[1:])]
            require_all(flows, "TartanAir")
            items += sequence_items(
                frames, flows, {"scene": str(traj.relative_to(self.root))}, num_frames, stride, names=ids
            )
        super().__init__(items[::every], transform=transform)
