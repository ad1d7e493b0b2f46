"""Zero-shot correspondence of diffusion features, layer by denoising step (paper §4.3, App. B; Fig. 3, 7, 8).

For a frame pair (k, k+1) and one tapped layer, the query features of frame k and the key features of frame k+1
(``[h, w, C]`` on the 1/16 token grid, heads concatenated) give the cost volume of **Eq. 12**,
``C(i, j) = ⟨Q_k(i), K_{k+1}(j)⟩`` over all token pairs; the flow at token ``i`` is the expected (soft-argmax)
or best (hard argmax) position ``j`` minus ``i``, scaled from tokens to pixels and bilinearly upsampled to the
image. Post-AdaNorm features (App. B.2) use the same feature on both sides.

**Temperature.** The paper gives none; the default, 1, is the literal soft-argmax ``softmax(C)`` of Eq. 12's raw
dot products. Q and K leave an RMS qk-norm, so their dot products grow with the width C (1536 for the paper
model) and the soft-argmax is then close to the hard argmax; ``temperature`` divides the cost before the softmax.

:func:`run_analysis` runs the denoising once per clip (F frames, default 3 as in training), records every block
at every step, and accumulates the EPE of each (block, step) against the reference flow (exact ground truth or
teacher pseudo ground truth) into a :class:`LayerStepTable`; :mod:`daflow.eval.report` draws the figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from daflow.flow.metrics import FlowMetrics

#: feature kinds of the analysis: query of frame k vs key of frame k+1, or post-AdaNorm hidden states (App. B.2)
FEATURE_KINDS = ("qk", "adanorm")
ARGMAX_MODES = ("soft", "hard")


def cost_volume(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. 12: ``[B, h, w, C]`` × ``[B, h', w', C]`` → ``[B, h·w, h'·w']`` dot products, in float32
    (token axes may also come flattened: ``[B, N, C]``)."""
    if source.ndim not in (3, 4) or target.ndim not in (3, 4) or source.shape[-1] != target.shape[-1]:
        raise ValueError(
            f"features must be [B, h, w, C] with one C, got {tuple(source.shape)} and {tuple(target.shape)}"
        )
    return torch.einsum("bic,bjc->bij", source.flatten(1, -2).float(), target.flatten(1, -2).float())


def _token_grid(h: int, w: int, device) -> torch.Tensor:
    """``[h·w, 2]`` token coordinates (x, y)."""
    ys, xs = torch.meshgrid(
        torch.arange(h, device=device, dtype=torch.float32),
        torch.arange(w, device=device, dtype=torch.float32),
        indexing="ij",
    )
    return torch.stack([xs, ys], -1).reshape(-1, 2)


def match_tokens(
    source: torch.Tensor, target: torch.Tensor, *, mode: str = "soft", temperature: float = 1.0, chunk: int = 4096
) -> torch.Tensor:
    """Token displacement ``[B, 2, h, w]`` (x, y; in tokens) from ``source`` to ``target`` features.

    ``mode="soft"``: ``Σ_j softmax_j(C(i, j) / temperature) · p_j − p_i``; ``"hard"``: ``argmax_j C(i, j)``.
    Query tokens are processed ``chunk`` at a time so that the cost volume never exceeds ``chunk × h'w'``.
    """
    if mode not in ARGMAX_MODES:
        raise ValueError(f"mode must be one of {ARGMAX_MODES}, got {mode!r}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if source.ndim != 4 or target.ndim != 4:
        raise ValueError(f"features must be [B, h, w, C], got {tuple(source.shape)} and {tuple(target.shape)}")
    b, h, w, c = source.shape
    ht, wt = target.shape[1:3]
    src, tgt = source.flatten(1, 2), target.flatten(1, 2)
    grid_t = _token_grid(ht, wt, source.device)
    out = []
    for s in range(0, h * w, chunk):
        cost = cost_volume(src[:, s : s + chunk], tgt)
        if mode == "soft":
            out.append(torch.softmax(cost / temperature, dim=-1) @ grid_t)
        else:
            out.append(grid_t[cost.argmax(dim=-1)])
    matched = torch.cat(out, 1)  # [B, h·w, 2]
    disp = matched - _token_grid(h, w, source.device)
    return disp.transpose(1, 2).reshape(b, 2, h, w)


def zero_shot_flow(
    source: torch.Tensor,
    target: torch.Tensor,
    image_size: tuple[int, int],
    *,
    mode: str = "soft",
    temperature: float = 1.0,
) -> torch.Tensor:
    """Flow ``[B, 2, H, W]`` in pixels: :func:`match_tokens` scaled by the token stride (``H/h``, ``W/w``) and
    bilinearly upsampled (``align_corners=False``: token values sit at token centres) to ``image_size``."""
    h, w = source.shape[1:3]
    big_h, big_w = image_size
    disp = match_tokens(source, target, mode=mode, temperature=temperature)
    scale = torch.tensor([big_w / w, big_h / h], device=disp.device).view(1, 2, 1, 1)
    return F.interpolate(disp * scale, size=(big_h, big_w), mode="bilinear", align_corners=False)


@dataclass
class LayerStepTable:
    """EPE (and 1/3/5 px outlier rates) of every tapped block at every denoising step for one feature kind.

    ``metrics[block][step]`` is ``{"epe", "1px", "3px", "5px"}`` averaged over frame pairs.
    """

    feature: str
    attention: str
    timesteps: list[float]
    metrics: dict[int, list[dict[str, float]]] = field(default_factory=dict)
    pairs: int = 0

    @property
    def name(self) -> str:
        return "post-AdaNorm" if self.feature == "adanorm" else f"Q/K ({self.attention})"

    @property
    def blocks(self) -> list[int]:
        return sorted(self.metrics)

    def epe(self) -> np.ndarray:
        """``[blocks, steps]`` EPE."""
        return np.array([[m["epe"] for m in self.metrics[b]] for b in self.blocks])

    def mean_epe(self) -> dict[int, float]:
        """Step-averaged EPE of every block (the ranking criterion of Fig. 3a, 7, 8a)."""
        return {b: float(np.mean([m["epe"] for m in self.metrics[b]])) for b in self.blocks}

    def ranking(self) -> list[int]:
        """Blocks from best (lowest step-averaged EPE) to worst."""
        means = self.mean_epe()
        return sorted(means, key=lambda b: (means[b], b))

    def to_dict(self) -> dict:
        return {
            "feature": self.feature,
            "attention": self.attention,
            "name": self.name,
            "pairs": self.pairs,
            "timesteps": self.timesteps,
            "ranking": self.ranking(),
            "mean_epe": self.mean_epe(),
            "metrics": {str(b): v for b, v in self.metrics.items()},
        }

    def markdown(self, metric: str = "epe") -> str:
        """Block × step table of ``metric`` (rows in block order), with the step average and the rank."""
        steps = len(self.timesteps)
        rank = {b: i + 1 for i, b in enumerate(self.ranking())}
        head = "| block | " + " | ".join(str(s) for s in range(steps)) + " | mean | rank |"
        lines = [
            f"{self.name}, {metric} over {self.pairs} pairs (columns: denoising step)",
            "",
            head,
            "|---|" + "---|" * (steps + 2),
        ]
        fmt = "{:.3f}" if metric == "epe" else "{:.2f}"
        for b in self.blocks:
            vals = [m[metric] for m in self.metrics[b]]
            lines.append(
                f"| {b} | " + " | ".join(fmt.format(v) for v in vals) + f" | {fmt.format(np.mean(vals))} | {rank[b]} |"
            )
        return "\n".join(lines)


def _features(taps: dict[int, dict[str, torch.Tensor]], block: int, kind: str):
    entry = taps.get(block, {})
    if kind == "qk":
        return (entry["q"], entry["k"]) if "q" in entry and "k" in entry else None
    return (entry["adanorm"], entry["adanorm"]) if "adanorm" in entry else None


def run_analysis(
    backbone,
    samples: Sequence,
    *,
    features: Sequence[str] = ("qk",),
    attention: str = "attn",
    blocks: Sequence[int] | None = None,
    steps: int = 10,
    shift: float = 3.0,
    mode: str = "soft",
    temperature: float = 1.0,
    max_clips: int | None = None,
    seed: int = 0,
    progress: bool = True,
    label: str = "analysis",
) -> list[LayerStepTable]:
    """The layer × step zero-shot EPE of ``backbone`` (:class:`~daflow.models.backbone.DiffusionBackbone`) over
    ``samples`` (F-frame :class:`~daflow.data.base.FlowSample` with reference flow for every pair).

    ``features``: any of ``"qk"`` (query of frame k vs key of frame k+1 of ``attention``) and ``"adanorm"``;
    ``blocks``: 0-based blocks (default: all; for ``attn2``, the blocks that have one). One denoising run per clip
    serves every block, step and feature kind. Frames are padded to multiples of 16 and the flow cropped back.
    """
    from daflow.models.raft import InputPadder
    from daflow.models.vae import TOKEN_STRIDE

    blocks, spec = _analysis_taps(backbone, features, attention, blocks, mode)
    n = len(samples) if max_clips is None else min(max_clips, len(samples))
    if n == 0:
        raise ValueError(f"{label}: no clips to analyse")
    cells: dict[tuple[str, int], list[FlowMetrics]] = {}
    timesteps: list[float] = []
    pairs = 0
    for index in tqdm(range(n), desc=label, unit="clip", disable=not progress):
        sample = samples[index]
        if sample.flow is None:
            raise ValueError(f"{label}: clip {sample.meta} has no reference flow; the analysis needs it")
        frames = torch.from_numpy(np.ascontiguousarray(sample.frames)).permute(0, 3, 1, 2).float()  # [F, 3, H, W]
        if frames.shape[0] < 2:
            raise ValueError(f"{label}: clips need at least 2 frames, got {frames.shape[0]}")
        gt = torch.from_numpy(np.ascontiguousarray(sample.flow)).permute(0, 3, 1, 2)
        valid = None if sample.valid is None else torch.from_numpy(np.ascontiguousarray(sample.valid))
        step_times = []
        padder = InputPadder(frames.shape, multiple=TOKEN_STRIDE)
        padded = padder.pad_images(frames)[0]
        for step in backbone.features(padded.unsqueeze(0), taps=spec, steps=steps, shift=shift, seed=seed + index):
            step_times.append(step.timestep)
            found = _zero_shot_flows(step.taps, features, blocks, padder, tuple(padded.shape[-2:]), mode, temperature)
            for (kind, b), flow in found:
                row = cells.setdefault((kind, b), [FlowMetrics() for _ in range(steps)])
                row[step.index].update(flow.cpu(), gt, valid)
        timesteps = step_times
        pairs += frames.shape[0] - 1
    return [_table(cells, kind, attention, timesteps, pairs, blocks, backbone) for kind in features]


def _analysis_taps(backbone, features, attention: str, blocks, mode: str):
    """The checked ``blocks`` (default: all) and the :class:`~daflow.models.taps.TapSpec` of an analysis."""
    from daflow.models.taps import TapSpec

    bad = set(features) - set(FEATURE_KINDS)
    if bad or not features:
        raise ValueError(f"features must be a non-empty subset of {FEATURE_KINDS}, got {list(features)}")
    if mode not in ARGMAX_MODES:
        raise ValueError(f"mode must be one of {ARGMAX_MODES}, got {mode!r}")
    cfg = backbone.transformer.config
    all_blocks = list(range(cfg.num_layers))
    blocks = all_blocks if blocks is None else sorted(set(int(b) for b in blocks))
    outside = [b for b in blocks if b not in all_blocks]
    if outside:
        raise ValueError(f"blocks {outside} do not exist; the model has blocks 0..{cfg.num_layers - 1}")
    names = tuple(["q", "k"] if "qk" in features else []) + (("adanorm",) if "adanorm" in features else ())
    return blocks, TapSpec(blocks=tuple(blocks), attention=attention, features=names)


def _zero_shot_flows(taps, features, blocks, padder, size: tuple[int, int], mode: str, temperature: float):
    """``((kind, block), flow [F−1, 2, H, W])`` for every feature kind and block the step recorded: frame k's
    features matched against frame k+1's (Eq. 9) at the padded ``size``, cropped back to the input size."""
    for kind in features:
        for b in blocks:
            feats = _features(taps, b, kind)
            if feats is None:
                continue
            src, tgt = feats[0][0, :-1], feats[1][0, 1:]  # frames k and k+1: [F-1, h, w, C]
            yield (kind, b), padder.unpad(zero_shot_flow(src, tgt, size, mode=mode, temperature=temperature))


def _table(cells: dict, kind: str, attention: str, timesteps, pairs: int, blocks, backbone) -> LayerStepTable:
    """One feature kind's :class:`LayerStepTable` from the accumulated ``cells``."""
    table = LayerStepTable(feature=kind, attention=attention if kind == "qk" else "-", timesteps=timesteps, pairs=pairs)
    for (k, b), row in sorted(cells.items(), key=lambda kv: kv[0][1]):
        if k == kind:
            table.metrics[b] = [m.compute() for m in row]
    if not table.metrics:
        raise ValueError(
            f"no {kind} features were recorded from blocks {blocks} ({attention}); "
            f"attn2 exists in blocks {list(backbone.transformer.config.dual_attention_layers)} only"
        )
    return table
