"""The sequence loss of RAFT and DA-Flow (paper Eq. 18).

``L = Σ_{i=1..M} γ^{M−i} · ‖f_i − f_gt‖₁`` over valid pixels (``valid ≥ 0.5`` and ``|f_gt| < max_flow``).
``normalize="all"`` divides each L1 term by all ``B·2·H·W`` entries, exactly as official RAFT's
``(valid[:, None] * |pred − gt|).mean()``; ``"valid"`` divides by ``2 ·`` the number of valid pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def sequence_loss(
    predictions: Sequence[torch.Tensor],
    gt: torch.Tensor,
    valid: torch.Tensor | None = None,
    *,
    gamma: float = 0.8,
    max_flow: float = 400.0,
    normalize: str = "all",
) -> torch.Tensor:
    """Predictions: M tensors ``[B, 2, H, W]``; ``gt`` ``[B, 2, H, W]``; ``valid`` ``[B, H, W]`` (default all)."""
    if normalize not in ("all", "valid"):
        raise ValueError(f"normalize must be 'all' or 'valid', got {normalize!r}")
    if not predictions:
        raise ValueError("sequence_loss needs at least one prediction")
    if valid is None:
        valid = torch.ones(gt.shape[0], *gt.shape[2:], device=gt.device)
    gt_ok = torch.isfinite(gt).all(1)
    gt = torch.nan_to_num(gt)
    mask = ((valid >= 0.5) & gt_ok & (gt.norm(dim=1) < max_flow)).to(gt.dtype)[:, None]
    n = len(predictions)
    total = gt.new_zeros(())
    for i, pred in enumerate(predictions):
        if pred.shape != gt.shape:
            raise ValueError(f"prediction {i} has shape {tuple(pred.shape)}, ground truth {tuple(gt.shape)}")
        err = mask * (pred - gt).abs()
        term = err.mean() if normalize == "all" else err.sum() / (2 * mask.sum()).clamp_min(1)
        total = total + gamma ** (n - i - 1) * term
    return total
