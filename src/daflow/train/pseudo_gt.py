"""Pseudo ground truth: a teacher's flow on the HQ frames, the labels of DA-Flow's stage 2 (paper §4.4, App. A).

The paper runs SEA-RAFT's spring-M configuration (half-resolution inputs) with the
``Tartan-C-T-TSKH-spring540x960-M.pth`` weights: 4 iterations for the zero-shot analysis (§4.3) and 20 for the
training labels. :func:`write_pseudo_gt` does this for every consecutive pair of every clip below a root.

Layout: ``OUT/<clip path relative to ROOT, video suffix dropped>/<stem of frame k>.<fmt>`` holds the flow from
frame k to frame k+1 (Sintel's convention); video frames are named ``%06d``. ``OUT/pseudo_gt.json`` records the
teacher, its weights file, iterations and scale. Existing label files are kept, so an interrupted run resumes;
every file is written atomically. Pairs are batched within a clip in fixed groups (pairs 0..b−1, b..2b−1, …), and a
group with a missing label is recomputed whole, so a label never depends on which other labels already existed or
on the shard (``shard``, :mod:`daflow.shard`: every N-th clip) that wrote it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

import daflow
from daflow.choices import LABEL_FORMATS
from daflow.data.labeled import find_clip_roots, label_dir
from daflow.data.video import FrameSource
from daflow.files import claim_run
from daflow.flow.io import write_flow
from daflow.models.registry import FlowEstimator
from daflow.shard import WHOLE, Shard

log = logging.getLogger(__name__)

MANIFEST = "pseudo_gt.json"


@dataclass
class PseudoGTReport:
    clips: int
    pairs: int
    written: int
    skipped: int


def write_pseudo_gt(
    root: str | Path,
    out: str | Path,
    teacher: FlowEstimator,
    *,
    fmt: str = "flo",
    batch_size: int = 4,
    progress: bool = True,
    settings: dict | None = None,
    shard: Shard = WHOLE,
) -> PseudoGTReport:
    """Write ``teacher``'s flow for every consecutive frame pair of every clip below ``root`` (or of ``root`` itself
    if it is one video or frame folder). ``settings`` (iterations, scale, weights) go into the manifest; ``shard``:
    only every N-th clip of the sorted list (the report then counts that shard's clips)."""
    if fmt not in LABEL_FORMATS:
        raise ValueError(f"label format must be one of {LABEL_FORMATS}, got {fmt!r}")
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    root, out = Path(root), Path(out)
    if not root.exists():
        raise FileNotFoundError(
            f"clips not found: {root} (expected a folder of videos / frame folders, one video, or one frame folder)"
        )
    clips = find_clip_roots(root)
    if not clips:
        raise FileNotFoundError(f"{root}: no video files or frame folders found below it")
    record = {
        "teacher": teacher.name,
        "description": teacher.description,
        "random_init": teacher.random_init,
        "format": fmt,
        "daflow": daflow.__version__,
        "threads": torch.get_num_threads(),
        **(settings or {}),
    }
    claim_run(out / MANIFEST, record, keys=("teacher", "iters", "scale", "random_init"), what="pseudo-GT labels")
    groups = []  # (source, [(pair index, output path)]) in fixed per-clip batches
    sources, pairs = [], 0
    for clip in shard.select(clips):
        src = FrameSource(clip)
        if len(src) < 2:
            log.warning("%s: fewer than 2 frames, skipped", clip)
            continue
        sources.append(src)
        names = src.frame_names()
        dest = out if clip == root else label_dir(root, clip, out)
        items = [(k, dest / f"{names[k]}.{fmt}") for k in range(len(src) - 1)]
        pairs += len(items)
        groups += [(src, items[i : i + batch_size]) for i in range(0, len(items), batch_size)]
    todo = [(src, items) for src, items in groups if not all(path.is_file() for _, path in items)]
    bar = tqdm(
        total=pairs, initial=pairs - sum(len(g) for _, g in todo), desc="pseudo-gt", unit="pair", disable=not progress
    )
    written = 0
    for src, items in todo:
        first = src.read(items[0][0], len(items) + 1)  # frames k0 .. k0+len: the group's consecutive pairs
        flows = teacher(_tensor(list(first[:-1])), _tensor(list(first[1:])))
        for (_, path), flow in zip(items, flows):
            if path.is_file():
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            write_flow(path, flow.permute(1, 2, 0).float().cpu().numpy())
            written += 1
        bar.update(len(items))
    bar.close()
    return PseudoGTReport(clips=len(sources), pairs=pairs, written=written, skipped=pairs - written)


def _tensor(frames: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float()
