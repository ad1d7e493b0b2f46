"""Taps (paper §4.3–4.4, App. B): the diffusion features DA-Flow reads from the lifted DiT4SR at each step.

DA-Flow correlates the **query of frame k** with the **key of frame k+1** of the noisy-latent (HQ) stream, taken
after the RMS qk-norm (what enters the attention), from the joint ``attn`` of blocks {3, 13, 16, 17} (0-based)
at every denoising step (Eq. 12–14). App. B.2 compares them with the post-AdaNorm hidden states (DiTF).

A :class:`TapRecorder` is handed to the model's forward pass; blocks offer their tensors and it keeps only the
requested ones, as ``[B, F, h, w, C]`` (C = heads·head_dim for Q/K, heads concatenated).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

DEFAULT_BLOCKS = (3, 13, 16, 17)
FEATURES = ("q", "k", "adanorm")


@dataclass(frozen=True)
class TapSpec:
    """What to record: ``blocks`` (0-based), ``attention`` ("attn": the joint MM-attention with text, or "attn2":
    the dual-attention layer of blocks 0–12) and ``features`` (any of "q", "k", "adanorm")."""

    blocks: tuple[int, ...] = DEFAULT_BLOCKS
    attention: str = "attn"
    features: tuple[str, ...] = ("q", "k")

    def __post_init__(self):
        if self.attention not in ("attn", "attn2"):
            raise ValueError(f"tap attention must be 'attn' or 'attn2', got {self.attention!r}")
        bad = set(self.features) - set(FEATURES)
        if bad:
            raise ValueError(f"unknown tap features {sorted(bad)}; choose from {FEATURES}")
        object.__setattr__(self, "blocks", tuple(sorted(set(int(b) for b in self.blocks))))


class TapRecorder:
    """Collects tapped features during one forward pass; :meth:`pop` returns and clears them."""

    def __init__(self, spec: TapSpec = TapSpec()):
        self.spec = spec
        self._store: dict[int, dict[str, torch.Tensor]] = {}

    def wants(self, block: int, attention: str) -> bool:
        return block in self.spec.blocks and attention == self.spec.attention

    def record_qk(
        self, block: int, attention: str, q: torch.Tensor, k: torch.Tensor, num_frames: int, grid: tuple[int, int]
    ) -> None:
        """``q``, ``k``: ``[B·F, heads, N, d]`` of the HQ stream after qk-norm."""
        if not self.wants(block, attention):
            return
        for name, t in (("q", q), ("k", k)):
            if name in self.spec.features:
                bf, heads, n, d = t.shape
                self._put(block, name, t.transpose(1, 2).reshape(bf, n, heads * d), num_frames, grid)

    def record_adanorm(self, block: int, hidden: torch.Tensor, num_frames: int, grid: tuple[int, int]) -> None:
        """``hidden``: ``[B·F, N, C]`` HQ tokens after the block's AdaLN modulation (App. B.2)."""
        if block in self.spec.blocks and "adanorm" in self.spec.features:
            self._put(block, "adanorm", hidden, num_frames, grid)

    def _put(self, block: int, name: str, tokens: torch.Tensor, num_frames: int, grid: tuple[int, int]) -> None:
        bf, n, c = tokens.shape
        h, w = grid
        self._store.setdefault(block, {})[name] = tokens.detach().reshape(bf // num_frames, num_frames, h, w, c)

    def pop(self) -> dict[int, dict[str, torch.Tensor]]:
        out, self._store = self._store, {}
        return out
