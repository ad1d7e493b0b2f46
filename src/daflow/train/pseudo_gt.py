"""Pseudo ground truth: a teacher's flow on the HQ frames, the labels of DA-Flow's stage 2 (paper §4.4, App. A).

The paper runs SEA-RAFT's spring-M configuration (half-resolution inputs) with the
``Tartan-C-T-TSKH-spring540x960-M.pth`` weights: 4 iterations for the zero-shot analysis (§4.3) and 20 for the
training labels. :func:`write_pseudo_gt` does this for every consecutive pair of every clip below a root.

Layout: ``OUT/<clip path relative to ROOT, video suffix dropped>/<stem of frame k>.<fmt>`` holds the flow from
frame k to frame k+1 (Sintel's convention); video frames are named ``%06d``. ``OUT/pseudo_gt.json`` records the
teacher, its weights file, iterations and scale. Existing label files are kept, so an interrupted run resumes;
every file is written atomically.
"""

from __future__ import annotations

import json
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
from daflow.files import atomic_write_text
from daflow.flow.io import write_flow
from daflow.models.registry import FlowEstimator

log = logging.getLogger(__name__)

MANIFEST = "pseudo_gt.json"


@dataclass
class PseudoGTReport:
    clips: int
    pairs: int
    written: int
    skipped: int


def _check_manifest(out: Path, record: dict) -> None:
    path = out / MANIFEST
    if not path.is_file():
        return
    old = json.loads(path.read_text())
    keys = ("teacher", "iters", "scale", "random_init")
    if any(old.get(k) != record.get(k) for k in keys):
        raise ValueError(
            f"{out} holds labels from another teacher setting ({ {k: old.get(k) for k in keys} }); "
            f"now asked for { {k: record.get(k) for k in keys} }. Use another output folder."
        )


def write_pseudo_gt(
    root: str | Path,
    out: str | Path,
    teacher: FlowEstimator,
    *,
    fmt: str = "flo",
    batch_size: int = 4,
    progress: bool = True,
    settings: dict | None = None,
) -> PseudoGTReport:
    """Write ``teacher``'s flow for every consecutive frame pair of every clip below ``root`` (or of ``root`` itself
    if it is one video or frame folder). ``settings`` (iterations, scale, weights) go into the manifest."""
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
        **(settings or {}),
    }
    _check_manifest(out, record)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / MANIFEST, json.dumps(record, indent=2))
    jobs = []  # (source, pair index, output path)
    sources = []
    for clip in clips:
        src = FrameSource(clip)
        if len(src) < 2:
            log.warning("%s: fewer than 2 frames, skipped", clip)
            continue
        sources.append(src)
        names = src.frame_names()
        dest = out if clip == root else label_dir(root, clip, out)
        jobs += [(src, k, dest / f"{names[k]}.{fmt}") for k in range(len(src) - 1)]
    todo = [j for j in jobs if not j[2].is_file()]
    bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc="pseudo-gt", unit="pair", disable=not progress)
    written = 0
    for i in range(0, len(todo), batch_size):
        group = todo[i : i + batch_size]
        firsts, seconds = [], []
        for src, k, _ in group:
            pair = src.read(k, 2)
            firsts.append(pair[0]), seconds.append(pair[1])
        shapes = {f.shape for f in firsts}
        if len(shapes) > 1:  # different clips in one batch: run them one by one
            flows = [teacher(_tensor([a]), _tensor([b]))[0] for a, b in zip(firsts, seconds)]
        else:
            flows = list(teacher(_tensor(firsts), _tensor(seconds)))
        for (_, _, path), flow in zip(group, flows):
            path.parent.mkdir(parents=True, exist_ok=True)
            write_flow(path, flow.permute(1, 2, 0).float().cpu().numpy())
            written += 1
        bar.update(len(group))
    bar.close()
    return PseudoGTReport(clips=len(sources), pairs=len(jobs), written=written, skipped=len(jobs) - len(todo))


def _tensor(frames: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float()
