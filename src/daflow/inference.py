"""Optical flow for videos of any length (``daflow estimate``): chunks, resumable files, optional backward flow.

A :class:`ClipEstimator` maps a batch of F-frame chunks ``[B, F, 3, H, W]`` (RGB 0..255) to the flows of their
consecutive pairs ``[B, F−1, 2, H, W]``. DA-Flow works on 3-frame chunks (App. A.0.4); pairwise models (RAFT,
SEA-RAFT, classical) on 2-frame chunks. The video is cut into chunks that share their boundary frame
(:data:`daflow.data.base.CHUNKS`), so every consecutive pair gets exactly one flow; chunks are batched.

Outputs below ``OUT``: ``flow/<frame k>.<fmt>`` (k → k+1), with ``--backward`` ``backward/<frame k>.<fmt>``
(k+1 → k), with ``--occlusion`` ``occlusion/<frame k>.png`` (255 = occluded in frame k+1, forward–backward check),
with ``--viz`` ``viz/<frame k>.png`` (colour wheel), and ``estimate.json``. Every file is written atomically and a
chunk whose files all exist is skipped, so an interrupted run resumes where it stopped; with ``batch=1`` the resumed
files are bit-identical to an uninterrupted run's (batched chunks agree to float rounding: every chunk's starting
noise follows its first frame index, not its place in the batch).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from daflow.choices import FLOW_FILE_FORMATS as FORMATS
from daflow.data.base import CHUNKS, window_plan
from daflow.data.video import FrameSource
from daflow.files import atomic_write_text, check_output_dir, write_image
from daflow.flow.io import read_flow, write_flow


@dataclass
class ClipEstimator:
    """``fn(frames [B, F, 3, H, W], seeds) -> flows [B, F−1, 2, H, W]`` on chunks of ``chunk`` frames; ``seeds``
    (one per chunk) fix a stochastic model's randomness per chunk, whatever the batching."""

    name: str
    description: str
    chunk: int
    fn: Callable[[torch.Tensor, list[int]], torch.Tensor]

    def __call__(self, frames: torch.Tensor, seeds: list[int] | None = None) -> torch.Tensor:
        with torch.no_grad():
            return self.fn(frames, seeds if seeds is not None else list(range(frames.shape[0])))


def pairwise(estimator) -> ClipEstimator:
    """A :class:`~daflow.models.registry.FlowEstimator` (pairs) as a 2-frame :class:`ClipEstimator`."""
    return ClipEstimator(
        estimator.name,
        estimator.description,
        2,
        lambda frames, seeds: estimator(frames[:, 0], frames[:, 1]).unsqueeze(1),
    )


def daflow_estimator(
    model, *, step: int | str = 0, num_steps: int = 10, iters: int | None = None, seed: int = 0
) -> ClipEstimator:
    """DA-Flow on 3-frame chunks (a refiner-based DA-Flow, whose DiT sees one pair at a time: 2-frame chunks).
    ``step``: a step index (the denoising stops there; 0 = the fast single-step mode, one DiT call per chunk) or
    ``"mean"`` (the mean of all ``num_steps`` steps' flows). ``iters`` None: the model's ``default_iters`` (None again
    for a refiner-based DA-Flow: its pyramid's own a level)."""
    iters = model.default_iters if iters is None else iters
    if step != "mean" and not (isinstance(step, int) and 0 <= step < num_steps):
        raise ValueError(f"step must be 'mean' or an integer in 0..{num_steps - 1}, got {step!r}")

    def run(frames: torch.Tensor, seeds: list[int]) -> torch.Tensor:
        out = model(
            frames,
            steps=None if step == "mean" else [step],
            num_steps=num_steps,
            iters=iters,
            seed=[seed + s for s in seeds],
        )
        return out.mean() if step == "mean" else out.flows[step]

    mode = "mean of all steps" if step == "mean" else f"step {step}" + (" (single-step mode)" if step == 0 else "")
    refinement = "the refiner's iterations" if iters is None else f"{iters} iterations"
    chunk = 2 if model.config.refiner else 3
    return ClipEstimator("daflow", f"DA-Flow ({mode}, {num_steps}-step schedule, {refinement})", chunk, run)


@dataclass
class EstimateReport:
    pairs: int
    written: int
    skipped: int
    seconds: float


def estimate_video(
    estimator: ClipEstimator,
    source: str | os.PathLike | FrameSource,
    out: str | os.PathLike,
    *,
    fmt: str = "flo",
    backward: bool = False,
    occlusion: bool = False,
    viz: bool = False,
    max_flow: float | None = None,
    batch: int = 1,
    device: str | torch.device = "cpu",
    progress: bool = True,
    settings: dict | None = None,
) -> EstimateReport:
    """Write the flow of every consecutive pair of a video or frame folder (see the module docstring). The ``viz``
    pictures share one colour scale, ``max_flow`` px (default :func:`clip_flow_scale` of the clip's flows), written
    once every flow is there, so that colours compare across frames."""
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {FORMATS}, got {fmt!r}")
    if batch < 1:
        raise ValueError(f"--batch must be >= 1, got {batch}")
    src = source if hasattr(source, "frame_names") else FrameSource(source)  # a FrameSource or a FrameRange
    if len(src) < 2:
        raise ValueError(f"{src.path}: {len(src)} frame(s); flow needs at least 2")
    out = Path(out)
    names = src.frame_names()
    chunk = min(estimator.chunk, len(src))
    plan = window_plan(len(src), chunk, CHUNKS)

    def outputs(k: int) -> list[Path]:
        paths = [out / "flow" / f"{names[k]}.{fmt}"]
        paths += [out / "backward" / f"{names[k]}.{fmt}"] if backward else []
        paths += [out / "occlusion" / f"{names[k]}.png"] if occlusion else []
        return paths

    record = {
        "threads": torch.get_num_threads(),
        "input": str(src.path),
        "frames": len(src),
        "model": estimator.name,
        "description": estimator.description,
        "chunk": chunk,
        "format": fmt,
        "backward": backward,
        "occlusion": occlusion,
        **(settings or {}),
    }
    check_output_dir(out)
    created = not out.exists()
    try:
        report = _run_chunks(
            estimator,
            src,
            out,
            plan,
            chunk,
            outputs,
            fmt=fmt,
            backward=backward,
            occlusion=occlusion,
            batch=batch,
            device=device,
            progress=progress,
        )
    except BaseException:
        if created and out.is_dir() and not any(p.is_file() for p in out.rglob("*")):
            import shutil

            shutil.rmtree(out, ignore_errors=True)  # a run that wrote nothing leaves nothing behind
        raise
    record["pairs"] = report.pairs
    if viz:
        files = [out / "flow" / f"{n}.{fmt}" for n in names[:-1]]
        record["viz_max_flow"] = write_viz(files, out / "viz", max_flow)
    atomic_write_text(out / "estimate.json", json.dumps(record, indent=2))  # written once every pair has its flow
    return report


def chunk_flows(
    estimator: ClipEstimator,
    read: Callable[[int, int], np.ndarray],
    chunks: list[tuple[int, int]],
    chunk: int,
    *,
    batch: int = 1,
    device: str | torch.device = "cpu",
    backward: bool = False,
):
    """Run ``estimator`` on the planned ``chunks`` (``(start, first_new_pair)`` of :func:`window_plan`), ``batch`` at
    a time, with frames from ``read(start, count)`` (uint8 ``[count, H, W, 3]``). Yields ``(k, forward, backward)``
    for every pair k → k+1 the chunks own: flows ``[2, H, W]`` on ``device``, ``backward`` (k+1 → k) None unless
    asked for. A chunk's noise seed is its start frame, so batching changes nothing."""
    for i in range(0, len(chunks), batch):
        group = chunks[i : i + batch]
        frames = (
            torch.from_numpy(np.stack([read(s, chunk) for s, _ in group])).permute(0, 1, 4, 2, 3).float().to(device)
        )
        seeds = [s for s, _ in group]
        fw = estimator(frames, seeds).float()
        bw = estimator(frames.flip(1), seeds).float().flip(1) if backward else None  # bw[:, j]: frame j+1 -> j
        for g, (s, first) in enumerate(group):
            for j in range(first, chunk - 1):
                yield s + j, fw[g, j], None if bw is None else bw[g, j]


def _run_chunks(
    estimator,
    src,
    out: Path,
    plan,
    chunk: int,
    outputs,
    *,
    fmt: str,
    backward: bool,
    occlusion: bool,
    batch: int,
    device,
    progress: bool,
) -> EstimateReport:
    import time

    from daflow.flow.warp import forward_backward_occlusion

    names = src.frame_names()
    out.mkdir(parents=True, exist_ok=True)
    todo = [
        (s, first)
        for s, first in plan
        if not all(p.is_file() for k in range(s + first, s + chunk - 1) for p in outputs(k))
    ]
    total_pairs = len(src) - 1
    done_pairs = total_pairs - sum(chunk - 1 - first for _, first in todo)
    bar = tqdm(total=total_pairs, initial=done_pairs, desc="estimate", unit="pair", disable=not progress)
    written, t0 = 0, time.perf_counter()
    for k, f, b in chunk_flows(
        estimator, src.read, todo, chunk, batch=batch, device=device, backward=backward or occlusion
    ):
        write_flow(out / "flow" / f"{names[k]}.{fmt}", f.permute(1, 2, 0).cpu().numpy())
        if backward:
            write_flow(out / "backward" / f"{names[k]}.{fmt}", b.permute(1, 2, 0).cpu().numpy())
        if occlusion:
            occ = forward_backward_occlusion(f[None], b[None])[0]
            write_image(out / "occlusion" / f"{names[k]}.png", occ.cpu().numpy().astype(np.uint8) * 255)
        written += 1
        bar.update(1)
    bar.close()
    return EstimateReport(pairs=total_pairs, written=written, skipped=done_pairs, seconds=time.perf_counter() - t0)


VIZ_PERCENTILE = 99.0  # the clip-wide colour scale: the largest per-pair 99th percentile of |flow|


def clip_flow_scale(files: list[Path]) -> float:
    """One colour scale (px) for a clip's flow pictures: the largest per-pair :data:`VIZ_PERCENTILE` percentile of the
    flow magnitude (robust to a few wild pixels), at least 1 px (a static clip stays dark, not noise)."""
    scale = 0.0
    for path in files:
        flow, _ = read_flow(path)
        scale = max(scale, float(np.percentile(np.linalg.norm(flow, axis=-1), VIZ_PERCENTILE)))
    return max(scale, 1.0)


def write_viz(files: list[Path], folder: Path, max_flow: float | None = None) -> float:
    """Colour-wheel pictures ``folder/<name>.png`` of the flow ``files``, all on one scale (``max_flow`` px, default
    :func:`clip_flow_scale`); returns the scale."""
    from daflow.flow.viz import flow_to_color

    if max_flow is not None and max_flow <= 0:
        raise ValueError(f"--max-flow must be > 0 px, got {max_flow}")
    scale = clip_flow_scale(files) if max_flow is None else float(max_flow)
    for path in files:
        write_image(folder / f"{path.stem}.png", flow_to_color(read_flow(path)[0], max_flow=scale))
    return scale


def clip_pair_flows(
    estimator: ClipEstimator, frames: np.ndarray, *, device: str | torch.device = "cpu", backward: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Forward flows ``[F−1, 2, H, W]`` of every consecutive pair of one clip ``frames`` ``[F, H, W, 3]`` (uint8),
    in pair order on the CPU, and the backward flows when asked for (else None): the clip's chunks as
    :func:`chunk_flows` plans them."""
    n = min(estimator.chunk, len(frames))
    pairs = sorted(
        chunk_flows(
            estimator,
            lambda s, c: frames[s : s + c],
            window_plan(len(frames), n, CHUNKS),
            n,
            device=device,
            backward=backward,
        ),
        key=lambda item: item[0],
    )
    fw = torch.stack([f for _, f, _ in pairs]).float().cpu()
    return fw, (torch.stack([b for _, _, b in pairs]).float().cpu() if backward else None)
