"""Flow accuracy metrics (paper §5.1: EPE and the percentage of pixels with error above 1, 3, 5 px) and
the warping error used for temporal consistency (paper Appendix C.4, Table 6).

Layouts accepted by :func:`flow_metrics`:

- torch tensors are channels-first as models output them: ``pred``/``gt`` ``[B, 2, H, W]`` or ``[2, H, W]``,
  ``valid`` ``[B, H, W]`` or ``[H, W]``;
- numpy arrays are channels-last as files hold them: ``[B, H, W, 2]`` or ``[H, W, 2]``, ``valid`` likewise
  without the last axis.

Definitions (``docs/datasets.md``): ``epe = ‖f_pred − f_gt‖₂`` per pixel; ``EPE`` is its
mean over valid pixels; ``Npx = 100 · #{valid pixels with epe > N} / #valid``. Ground truth that is NaN or
infinite is invalid. By default each image's numbers are computed on its own valid pixels and then averaged
over images (SEA-RAFT / FlowSeek / ptlflow); ``reduce="pixel"`` pools all pixels of all images (official RAFT).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from daflow.flow.warp import backward_warp

DEFAULT_THRESHOLDS = (1.0, 3.0, 5.0)


def _threshold_key(t: float) -> str:
    return f"{t:g}px"


def _as_bhw2(x, name: str) -> torch.Tensor:
    """Convert a flow in either accepted layout to a float64 torch tensor ``[B, H, W, 2]``."""
    if isinstance(x, torch.Tensor):
        t = x.detach().to(torch.float64)
        if t.ndim == 3:
            t = t.unsqueeze(0)
        if t.ndim != 4 or t.shape[1] != 2:
            raise ValueError(
                f"{name}: torch flow must be channels-first [B, 2, H, W] or [2, H, W], got {tuple(x.shape)}"
            )
        return t.permute(0, 2, 3, 1).cpu()
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4 or a.shape[-1] != 2:
        raise ValueError(f"{name}: numpy flow must be channels-last [B, H, W, 2] or [H, W, 2], got {a.shape}")
    return torch.from_numpy(a)


def _as_bhw(x, batch: int, name: str) -> torch.Tensor:
    t = x.detach().cpu() if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))
    if t.ndim == 2:
        t = t.unsqueeze(0)
    if t.ndim != 3 or t.shape[0] != batch:
        raise ValueError(f"{name}: valid mask must be [B, H, W] or [H, W] with B = {batch}, got {tuple(t.shape)}")
    return t.to(torch.bool)


def end_point_error(pred, gt, valid=None, *, spring_min: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel end-point error and validity, both ``[B, H, W]`` on the prediction's grid.

    With ``spring_min=True`` the ground truth (and ``valid``, if given) is at twice the prediction's
    resolution, and each pixel's error is the minimum over its 2×2 ground-truth candidates that are valid
    (the Spring benchmark's rule; a pixel is valid if any candidate is).
    """
    p = _as_bhw2(pred, "pred")
    g = _as_bhw2(gt, "gt")
    b, h, w, _ = p.shape
    gh, gw = (2 * h, 2 * w) if spring_min else (h, w)
    if g.shape != (b, gh, gw, 2):
        what = "twice the prediction's size (spring_min)" if spring_min else "the prediction's shape"
        raise ValueError(f"gt of shape {tuple(g.shape)} (as [B, H, W, 2]) must have {what}: expected {(b, gh, gw, 2)}")
    ok = torch.isfinite(g).all(-1)
    if valid is not None:
        v = _as_bhw(valid, b, "valid")
        if v.shape[-2:] != (gh, gw):
            raise ValueError(f"valid of shape {tuple(v.shape)} does not match the ground truth grid {(gh, gw)}")
        ok &= v
    g = torch.where(ok[..., None], g, torch.zeros((), dtype=g.dtype))
    if not spring_min:
        return (p - g).norm(dim=-1), ok
    # [B, 2H, 2W, 2] -> [B, H, W, 4 candidates, 2]
    g4 = g.reshape(b, h, 2, w, 2, 2).permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, 4, 2)
    ok4 = ok.reshape(b, h, 2, w, 2).permute(0, 1, 3, 2, 4).reshape(b, h, w, 4)
    epe4 = (p[:, :, :, None] - g4).norm(dim=-1).masked_fill(~ok4, float("inf"))
    epe = epe4.min(dim=-1).values
    valid_any = ok4.any(-1)
    return torch.where(valid_any, epe, torch.zeros((), dtype=epe.dtype)), valid_any


@dataclass
class FlowMetrics:
    """Accumulates per-image EPE / N-px statistics over many batches.

    ``update`` takes the same arguments as :func:`flow_metrics`, plus an optional ``key`` per batch (e.g. the sample
    index; one key per image, a batch of B images gets ``(key, 0) … (key, B−1)``); ``compute`` returns the dict.
    Images with no valid pixel are counted in ``n_skipped`` and ignored. :meth:`state` / :meth:`merge` carry the
    per-image sums between processes (sharded evaluation): merged in key order, they compute exactly what one
    accumulator fed in that order computes.
    """

    thresholds: Sequence[float] = DEFAULT_THRESHOLDS
    spring_min: bool = False
    n_valid: list[int] = field(default_factory=list)
    epe_sum: list[float] = field(default_factory=list)
    outliers: list[list[int]] = field(default_factory=list)
    n_skipped: int = 0
    keys: list[list[int]] = field(default_factory=list)

    def update(self, pred, gt, valid=None, key: int | None = None) -> None:
        epe, ok = end_point_error(pred, gt, valid, spring_min=self.spring_min)
        n = ok.sum(dim=(1, 2))
        sums = torch.where(ok, epe, torch.zeros((), dtype=epe.dtype)).sum(dim=(1, 2))
        outl = [((epe > t) & ok).sum(dim=(1, 2)) for t in self.thresholds]
        for i in range(epe.shape[0]):
            if int(n[i]) == 0:
                self.n_skipped += 1
                continue
            self.n_valid.append(int(n[i]))
            self.epe_sum.append(float(sums[i]))
            self.outliers.append([int(o[i]) for o in outl])
            self.keys.append([len(self.keys), 0] if key is None else [int(key), i])

    def state(self) -> dict:
        """The per-image sums as JSON-ready lists (see :meth:`merge`)."""
        return {
            "thresholds": [float(t) for t in self.thresholds],
            "spring_min": self.spring_min,
            "keys": self.keys,
            "n_valid": self.n_valid,
            "epe_sum": self.epe_sum,
            "outliers": self.outliers,
            "n_skipped": self.n_skipped,
        }

    @classmethod
    def merge(cls, states: Sequence[dict]) -> FlowMetrics:
        """One accumulator from the :meth:`state` of several (shards of one evaluation), images in key order."""
        if not states:
            raise ValueError("nothing to merge")
        first = states[0]
        for st in states[1:]:
            if st["thresholds"] != first["thresholds"] or st["spring_min"] != first["spring_min"]:
                raise ValueError("cannot merge metrics with different thresholds or Spring settings")
        rows = sorted(
            (tuple(k), n, e, o)
            for st in states
            for k, n, e, o in zip(st["keys"], st["n_valid"], st["epe_sum"], st["outliers"])
        )
        keys = [r[0] for r in rows]
        if len(set(keys)) != len(keys):
            raise ValueError("the same image appears in two of the merged parts (a shard given twice?)")
        return cls(
            thresholds=tuple(first["thresholds"]),
            spring_min=first["spring_min"],
            n_valid=[r[1] for r in rows],
            epe_sum=[r[2] for r in rows],
            outliers=[list(r[3]) for r in rows],
            n_skipped=sum(st["n_skipped"] for st in states),
            keys=[list(k) for k in keys],
        )

    def compute(self, *, reduce: str = "image", percent: bool = True) -> dict[str, float]:
        if reduce not in ("image", "pixel"):
            raise ValueError(f"reduce must be 'image' or 'pixel', got {reduce!r}")
        if not self.n_valid:
            raise ValueError("no image with a valid ground-truth pixel was seen")
        n = np.asarray(self.n_valid, np.float64)
        s = np.asarray(self.epe_sum, np.float64)
        o = np.asarray(self.outliers, np.float64)  # [N, T]
        scale = 100.0 if percent else 1.0
        if reduce == "image":
            epe = float(np.mean(s / n))
            rates = (o / n[:, None]).mean(0)
        else:
            epe = float(s.sum() / n.sum())
            rates = o.sum(0) / n.sum()
        out = {"epe": epe}
        out.update({_threshold_key(t): float(r * scale) for t, r in zip(self.thresholds, rates)})
        return out

    @property
    def count(self) -> int:
        """Number of images that contributed."""
        return len(self.n_valid)


def flow_metrics(
    pred,
    gt,
    valid=None,
    *,
    reduce: str = "image",
    percent: bool = True,
    spring_min: bool = False,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
) -> dict[str, float]:
    """EPE and outlier rates of ``pred`` against ``gt``.

    Returns ``{"epe": …, "1px": …, "3px": …, "5px": …}``; the outlier rates are percentages
    (``percent=False`` gives fractions). ``reduce="image"`` averages per image then over images;
    ``"pixel"`` pools every valid pixel. ``spring_min``: see :func:`end_point_error`.
    """
    acc = FlowMetrics(thresholds=tuple(thresholds), spring_min=spring_min)
    acc.update(pred, gt, valid)
    return acc.compute(reduce=reduce, percent=percent)


def _as_bchw_image(x, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        t = x.detach().to(torch.float64)
        return t.unsqueeze(0) if t.ndim == 3 else t
    a = np.asarray(x, dtype=np.float64)  # numpy images are [H, W, C] or [B, H, W, C]
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4:
        raise ValueError(f"{name}: numpy image must be [H, W, C] or [B, H, W, C], got {a.shape}")
    return torch.from_numpy(a).permute(0, 3, 1, 2)


def warping_error(frame, next_frame, flow_fw, occlusion=None) -> float:
    """Masked warping error between frame k and frame k+1 warped back with the forward flow.

    ``E = mean over pairs of Σ_x M(x)·‖V_k(x) − W(V_{k+1})(x)‖² / Σ_x M(x)`` with ``M`` the non-occluded,
    in-bounds pixels (Lai et al. 2018; the squared error is summed over channels and averaged over pixels).
    Frames: torch ``[B, C, H, W]``/``[C, H, W]`` or numpy ``[B, H, W, C]``/``[H, W, C]``, in whatever range
    the caller uses (the diffusion-VSR protocol uses [0, 1] and reports ×1000). ``flow_fw`` in the
    :func:`flow_metrics` layouts; ``occlusion`` ``[B, H, W]`` bool (True = occluded), e.g. from
    :func:`daflow.flow.warp.forward_backward_occlusion`.
    """
    a = _as_bchw_image(frame, "frame")
    b = _as_bchw_image(next_frame, "next_frame")
    f = _as_bhw2(flow_fw, "flow_fw").permute(0, 3, 1, 2)
    if a.shape != b.shape or a.shape[0] != f.shape[0] or a.shape[-2:] != f.shape[-2:]:
        raise ValueError(
            f"frames {tuple(a.shape)}, {tuple(b.shape)} and flow {tuple(f.shape)} must agree (as [B, C, H, W])"
        )
    visible = None if occlusion is None else ~_as_bhw(occlusion, a.shape[0], "occlusion")
    return float(pair_warp_error(a, b, f, visible, in_bounds=True).mean())


def pair_warp_error(
    frame1: torch.Tensor,
    frame2: torch.Tensor,
    flow_fw: torch.Tensor,
    visible: torch.Tensor | None = None,
    *,
    in_bounds: bool = False,
) -> torch.Tensor:
    """The warping error of each pair ``[B]``: ``Σ_{x,c} M(x)·(V₁(x, c) − V₂(x + f(x), c))² / Σ_x M(x)`` with frames
    ``[B, C, H, W]``, the forward flow ``[B, 2, H, W]`` and the mask ``M`` = ``visible`` ``[B, H, W]`` (bool; None: all
    pixels), and with ``in_bounds`` only where ``x + f(x)`` lies inside the frame; bilinear sampling with zeros outside;
    a pair with no visible pixel divides by ``H·W·C`` (its error is 0), as Lai et al.'s ``evaluate_WarpError.py``
    does. The one implementation behind :func:`warping_error` (in-bounds and not occluded) and the restoration
    protocol's E_warp (:func:`daflow.restoration.consistency.ewarp`, not occluded by Lai et al.'s tests)."""
    warped, inside = backward_warp(frame2, flow_fw, return_mask=True)
    mask = torch.ones_like(inside) if visible is None else visible
    if in_bounds:
        mask = mask & inside
    m = mask.to(frame1.dtype)[:, None]
    diff = (frame1 - warped) * m
    n = m.sum((1, 2, 3))
    n = torch.where(n > 0, n, torch.full_like(n, float(np.prod(frame1.shape[1:]))))
    return (diff**2).sum((1, 2, 3)) / n
