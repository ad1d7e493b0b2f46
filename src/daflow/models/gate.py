"""The restorer's degradation gate: how much to trust the diffusion prior, from what the input's damage looks like.

The one-step DiT's output ``x̂_D`` helps the fidelity head on blur, noise and resampling damage, and costs on pure
codec damage of real footage (BENCHMARKS.md, "Video restoration": the head blind to it gains 0.15 dB more there). The
gate estimates, per chunk of LQ frames, the probability ``p`` that the damage is codec damage alone, and the head sees
the prior's hint weighted by ``1 − p``::

    prior = x_LQ + (1 − p) · (x̂_D − x_LQ)

``p`` is a logistic regression on seven statistics of the grey frames (:func:`damage_statistics`, averaged over the
chunk): the noise level (median absolute Laplacian, Immerkær's estimator up to a constant), the share of the
horizontal and vertical differences that falls on 8- and 4-pixel block boundaries (the transform grids of H.264 and
JPEG), the mean gradient, the high-frequency energy and its ratio to the gradient, and the share of flat pixels.
:func:`fit_gate` fits it on the restorer's own training mirrors, labelled by the preset that made them
(:data:`CODEC_ONLY_PRESETS`: 1; the RealBasicVSR-style presets: 0); no real footage is seen.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

GATE_FILE = "gate.json"
CODEC_ONLY_PRESETS = ("h264", "h264-low", "codec")  # degradation presets whose damage is a video codec's alone
STATISTICS = (
    "log noise",
    "8-px block edges",
    "4-px block edges",
    "log gradient",
    "log high-pass",
    "log hp/grad",
    "flat",
)


def damage_statistics(frames: np.ndarray) -> np.ndarray:
    """The gate's statistics (:data:`STATISTICS`, module docstring) of frames ``[F, H, W, 3]`` uint8 RGB, averaged
    over the frames: ``[7]`` float32."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be [F, H, W, 3] uint8, got {frames.shape} {frames.dtype}")
    rows = []
    for frame in frames:
        g = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY).astype(np.float32)
        lap = cv2.Laplacian(g, cv2.CV_32F)
        dx, dy = np.abs(np.diff(g, axis=1)), np.abs(np.diff(g, axis=0))
        grad = dx.mean() + dy.mean() + 1e-3
        high = np.abs(g - cv2.GaussianBlur(g, (0, 0), 1.0)).mean() + 1e-3
        rows.append(
            [
                np.log(np.median(np.abs(lap)) + 1e-3),
                (dx[:, 7::8].mean() + dy[7::8].mean()) / grad,
                (dx[:, 3::4].mean() + dy[3::4].mean()) / grad,
                np.log(grad),
                np.log(high),
                np.log(high / grad),
                (np.abs(lap) < 0.5).mean(),
            ]
        )
    return np.mean(rows, axis=0).astype(np.float32)


@dataclass(frozen=True)
class CodecGate:
    """A fitted gate: the statistics' ``mean`` and ``std`` (standardisation), the logistic ``weight`` and ``bias``."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    weight: tuple[float, ...]
    bias: float

    def probability(self, frames: np.ndarray) -> float:
        """``p``: the probability that the damage of frames ``[F, H, W, 3]`` (uint8) is codec damage alone."""
        z = (damage_statistics(frames) - np.asarray(self.mean)) / np.asarray(self.std)
        return float(1.0 / (1.0 + np.exp(-(float(z @ np.asarray(self.weight)) + self.bias))))

    def hint_weight(self, frames: np.ndarray) -> float:
        """``1 − p``: the weight of the diffusion prior's hint for these frames (module docstring)."""
        return 1.0 - self.probability(frames)

    def save(self, folder: str | os.PathLike) -> Path:
        from daflow.files import atomic_write_text

        path = Path(folder) / GATE_FILE
        atomic_write_text(path, json.dumps({"statistics": list(STATISTICS), **asdict(self)}, indent=2))
        return path


def load_gate(folder: str | os.PathLike) -> CodecGate:
    """The gate saved in ``folder`` (:data:`GATE_FILE`); a missing or malformed file is one clear error naming it."""
    path = Path(folder) / GATE_FILE
    try:
        data = json.loads(path.read_text())
        gate = CodecGate(tuple(data["mean"]), tuple(data["std"]), tuple(data["weight"]), float(data["bias"]))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a degradation gate ({e})") from e
    if not len(gate.mean) == len(gate.std) == len(gate.weight) == len(STATISTICS):
        raise ValueError(f"{path}: a degradation gate has {len(STATISTICS)} statistics, got {len(gate.weight)}")
    return gate


def fit_gate(clips: list[np.ndarray], labels: list[int], *, l2: float = 1e-3) -> tuple[CodecGate, float]:
    """Fit the gate on LQ ``clips`` (``[F, H, W, 3]`` uint8 each) with ``labels`` (1: codec damage alone, 0: other
    damage): L2-regularised logistic regression on the standardised statistics (L-BFGS, deterministic). Returns the
    gate and its accuracy on the clips."""
    if len(clips) != len(labels) or len(set(labels)) != 2:
        raise ValueError("fit_gate needs clips with both labels, 0 and 1, one label a clip")
    x = np.stack([damage_statistics(c) for c in clips])
    mean, std = x.mean(0), x.std(0) + 1e-6
    xt = torch.from_numpy((x - mean) / std).double()
    yt = torch.tensor(labels, dtype=torch.float64)
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(xt @ w + b, yt) + l2 * (w**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    gate = CodecGate(
        tuple(float(v) for v in mean), tuple(float(v) for v in std), tuple(w.detach().tolist()), float(b.detach())
    )
    accuracy = float((((xt @ w + b) > 0).double() == yt).double().mean())
    return gate, accuracy
