"""Lifting (paper §4.2, App. A): full spatio-temporal attention by folding the frames into the token axis.

Outside attention, a clip of F frames is a batch of B·F images (AdaLN, FFN, LQ control conv and the 2-D
position embedding stay per frame). Inside every attention of every block, each modality stream (noisy latent,
LQ, text) is folded from ``[B·F, heads, T, d]`` to ``[B, heads, F·T, d]``, the streams are concatenated and one
scaled-dot-product attention runs over all ``F·(2N + L)`` tokens; the outputs are unfolded back. There is no
temporal position embedding, so permuting the frames permutes the outputs, and with ``F = 1`` folding is a
pure reshape: the lifted model equals the unlifted one bit for bit.
"""

from __future__ import annotations

import torch


def fold(x: torch.Tensor, num_frames: int) -> torch.Tensor:
    """``[B·F, heads, T, d]`` → ``[B, heads, F·T, d]`` (frame-major token order)."""
    bf, heads, t, d = x.shape
    if bf % num_frames:
        raise ValueError(f"batch {bf} is not a multiple of num_frames={num_frames}")
    b = bf // num_frames
    return x.view(b, num_frames, heads, t, d).permute(0, 2, 1, 3, 4).reshape(b, heads, num_frames * t, d)


def unfold(x: torch.Tensor, num_frames: int) -> torch.Tensor:
    """``[B, F·T, C]`` → ``[B·F, T, C]`` (inverse of :func:`fold` after the heads are merged)."""
    b, ft, c = x.shape
    return x.view(b, num_frames, ft // num_frames, c).reshape(b * num_frames, ft // num_frames, c)


def lifted_attention(
    streams: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], num_frames: int
) -> list[torch.Tensor]:
    """Joint attention over several streams, each ``(q, k, v)`` of shape ``[B·F, heads, T_i, d]``, with all
    ``F`` frames folded together. Returns each stream's output ``[B·F, T_i, heads·d]``."""
    lengths = [q.shape[2] for q, _, _ in streams]
    q, k, v = (torch.cat([fold(s[i], num_frames) for s in streams], dim=2) for i in range(3))
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    b, heads, _, d = out.shape
    out = out.transpose(1, 2).reshape(b, -1, heads * d)
    pieces = torch.split(out, [num_frames * t for t in lengths], dim=1)
    return [unfold(p, num_frames) for p in pieces]
