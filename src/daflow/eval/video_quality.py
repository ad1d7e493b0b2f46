"""Flow quality on real video without ground truth: warping error and forward–backward consistency.

``daflow evaluate --model M --data video:PATH[?clean=CLEAN_PATH&start=S&end=E&stride=N]`` scores any model on any
footage. For every consecutive pair (k, k+1) of the input video (e.g. degraded frames), the model's forward flow
``F`` and backward flow ``B`` are estimated on the input frames; then

- **warping error** (0..255): the mean over visible pixels of ``|C_k(x) − C_{k+1}(x + F(x))|`` averaged over the
  RGB channels, with ``C`` the clean frames when ``clean=`` is given (else the input frames) and ``C_{k+1}``
  sampled bilinearly. The visible pixels are those that stay inside the frame and that a forward–backward check
  of OpenCV's DIS **on C** marks consistent: the mask does not depend on the model being scored, so every row is
  measured on the same pixels. The same error is also given over the **moving** pixels alone: the visible pixels
  that DIS on C sees move by ``MIN_MOTION`` (1 px) or more. On a static camera most pixels stand still and the
  score over all visible pixels ranks zero flow well; the moving pixels are where the models differ;
- **FB-consistent %**: the share of pixels where the model's own ``F`` and ``B`` agree
  (:func:`daflow.flow.warp.forward_backward_occlusion`), a self-consistency check that needs nothing else.

Zero flow and DIS (run on the same input frames) are the reference rows: a model that does not beat zero flow
has not found the motion; one that does not beat DIS is not worth its cost. Warping error rewards photometric
agreement, so it is a proxy (a flow that matches colours by accident scores well); on clips with ground truth use
EPE.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from daflow.data.base import CHUNKS, window_plan
from daflow.flow.warp import backward_warp, forward_backward_occlusion
from daflow.inference import chunk_flows
from daflow.models.classical import classical_flow


def _t(array: np.ndarray) -> torch.Tensor:
    """``[H, W, C]`` (a frame or a flow) → float ``[1, C, H, W]``."""
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)[None].float()


MIN_MOTION = 1.0  # px: a visible pixel whose reference (DIS on the clean pair) moves at least this much is "moving"


def reference_masks(clean1: np.ndarray, clean2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(visible, moving)`` ``[H, W]`` bool of a clean pair: the in-frame pixels whose DIS forward and backward flows
    agree, and those of them that DIS sees move by :data:`MIN_MOTION` px or more. On a static camera most pixels do
    not move, and the score over all visible pixels ranks zero flow well; the moving pixels are where models differ."""
    fw, bw = classical_flow(clean1, clean2, "dis"), classical_flow(clean2, clean1, "dis")
    visible = ~forward_backward_occlusion(_t(fw), _t(bw))[0].numpy()
    return visible, visible & (np.linalg.norm(fw, axis=-1) >= MIN_MOTION)


def visible_mask(clean1: np.ndarray, clean2: np.ndarray) -> np.ndarray:
    """``[H, W]`` bool: in-frame pixels whose DIS forward and backward flows on the clean pair agree."""
    return reference_masks(clean1, clean2)[0]


def photometric_error(clean1: np.ndarray, clean2: np.ndarray, flow: np.ndarray, visible: np.ndarray) -> float:
    """Mean over ``visible`` in-frame pixels of the channel-mean ``|C_k − warp(C_{k+1}, flow)|`` (0..255)."""
    warped, inside = backward_warp(_t(clean2), _t(flow), return_mask=True)
    diff = (_t(clean1) - warped).abs().mean(1)[0]
    mask = torch.from_numpy(visible) & inside[0]
    return float(diff[mask].mean()) if mask.any() else float("nan")


def fb_consistent(fw: np.ndarray, bw: np.ndarray) -> float:
    """Percentage of pixels where forward and backward flow agree."""
    return 100.0 * float((~forward_backward_occlusion(_t(fw), _t(bw))).float().mean())


@dataclass
class VideoPairs:
    """The input frames (``source``) and the frames scored (``clean`` when given, else the input)."""

    source: object  # FrameSource-like: len, read(start, count), path
    clean: object | None = None

    def __post_init__(self):
        if self.clean is not None and len(self.clean) != len(self.source):
            raise ValueError(
                f"clean={self.clean.path}: {len(self.clean)} frames, the input {self.source.path} has "
                f"{len(self.source)}"
            )
        if len(self.source) < 2:
            raise ValueError(f"{self.source.path}: {len(self.source)} frame(s); flow needs at least 2")


def model_flows(
    estimator, frames: np.ndarray, *, batch: int = 1, device="cpu", progress: bool = False, desc: str = "flow"
) -> tuple[np.ndarray, np.ndarray]:
    """Forward and backward flows ``[N−1, H, W, 2]`` of every consecutive pair of ``frames`` ``[N, H, W, 3]`` with a
    :class:`~daflow.inference.ClipEstimator` (chunks sharing their boundary frame, as ``daflow estimate``)."""
    n = len(frames)
    chunk = min(estimator.chunk, n)
    fw = np.zeros((n - 1, *frames.shape[1:3], 2), np.float32)
    bw = np.zeros_like(fw)
    pairs = chunk_flows(
        estimator,
        lambda s, c: frames[s : s + c],
        window_plan(n, chunk, CHUNKS),
        chunk,
        batch=batch,
        device=device,
        backward=True,
    )
    for k, f, b in tqdm(pairs, total=n - 1, desc=desc, unit="pair", disable=not progress):
        fw[k], bw[k] = f.permute(1, 2, 0).cpu().numpy(), b.permute(1, 2, 0).cpu().numpy()
    return fw, bw


def evaluate_video(
    estimators: dict,
    pairs: VideoPairs,
    *,
    max_pairs: int | None = None,
    batch: int = 1,
    device="cpu",
    progress: bool = True,
) -> dict:
    """Score every estimator (``{label: ClipEstimator}``) plus zero flow and DIS on the input; returns
    ``{"pairs": n, "rows": {label: {"warp_error", "fb_consistent"}}, "scored_on": "clean"|"input"}``."""
    n = len(pairs.source) if max_pairs is None else min(len(pairs.source), max_pairs + 1)
    lq = pairs.source.read(0, n)
    clean = pairs.clean.read(0, n) if pairs.clean is not None else lq
    if clean.shape != lq.shape:
        raise ValueError(
            f"clean={pairs.clean.path}: frames are {clean.shape[2]}x{clean.shape[1]}, the input "
            f"{pairs.source.path} {lq.shape[2]}x{lq.shape[1]}"
        )
    visible, moving = zip(*(reference_masks(clean[k], clean[k + 1]) for k in range(n - 1)))
    flows = {
        "zero flow": (np.zeros((n - 1, *lq.shape[1:3], 2), np.float32),) * 2,
        "DIS (input)": (
            np.stack([classical_flow(lq[k], lq[k + 1], "dis") for k in range(n - 1)]),
            np.stack([classical_flow(lq[k + 1], lq[k], "dis") for k in range(n - 1)]),
        ),
    }
    for label, est in estimators.items():
        flows[label] = model_flows(est, lq, batch=batch, device=device, progress=progress, desc=label)
    rows = {}
    for label, (fw, bw) in flows.items():
        rows[label] = {
            "warp_error": float(
                np.nanmean([photometric_error(clean[k], clean[k + 1], fw[k], visible[k]) for k in range(n - 1)])
            ),
            "warp_error_moving": _nanmean(
                [photometric_error(clean[k], clean[k + 1], fw[k], moving[k]) for k in range(n - 1)]
            ),
            "fb_consistent": float(np.mean([fb_consistent(fw[k], bw[k]) for k in range(n - 1)])),
            "mean_flow_px": float(np.linalg.norm(fw, axis=-1).mean()),
        }
    return {
        "pairs": n - 1,
        "rows": rows,
        "scored_on": "clean" if pairs.clean is not None else "input",
        "visible_pct": float(100 * np.mean([v.mean() for v in visible])),
        "moving_pct": float(100 * np.mean([m.mean() for m in moving])),
    }


def _nanmean(values: list[float]) -> float:
    """The mean of the finite values (NaN when none: no pair has a moving pixel)."""
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def markdown(result: dict, *, title: str = "") -> str:
    lines = [
        f"{title} ({result['pairs']} pairs; warping error on the {result['scored_on']} frames over "
        f"{result['visible_pct']:.1f}% visible pixels, of which {result['moving_pct']:.1f}% move by "
        f"{MIN_MOTION:g} px or more by DIS on those frames)"
        if title
        else "",
        "| model | warping error, visible pixels (0-255) | warping error, moving pixels | FB-consistent % | "
        "mean |flow| px |",
        "|---|---|---|---|---|",
    ]
    for label, r in result["rows"].items():
        lines.append(
            f"| {label} | {r['warp_error']:.3f} | {r['warp_error_moving']:.3f} | {r['fb_consistent']:.1f} | "
            f"{r['mean_flow_px']:.2f} |"
        )
    return "\n".join(line for line in lines if line)


def video_pairs(
    target: str, clean: str | None = None, start: str | int = 0, end: str | int | None = None, stride: str | int = 1
) -> VideoPairs:
    """The :class:`VideoPairs` of a ``video:PATH[?clean=CLEAN&start=S&end=E&stride=N]`` spec: the same range of the
    input and of the clean frames (0-based, ``end`` excluded)."""
    from daflow.data.video import FrameRange, FrameSource

    def number(name: str, value) -> int | None:
        try:
            return None if value is None else int(value)
        except ValueError:
            raise ValueError(f"video:{target}: {name}={value!r} is not an integer") from None

    first, last, step = number("start", start), number("end", end), number("stride", stride)

    def frames(path: str):
        source = FrameSource(Path(path))
        return source if (first, last, step) == (0, None, 1) else FrameRange(source, first, last, step)

    pairs = VideoPairs(frames(target), frames(clean) if clean else None)
    for source in (pairs.source, pairs.clean):
        if source is not None:
            source.check_sizes()
    return pairs
