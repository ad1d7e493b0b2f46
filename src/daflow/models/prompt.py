"""Text conditioning: the null prompt DA-Flow uses for features and flow (paper App. A.0.4).

DiT4SR is conditioned on SD3 prompt embeddings: 154 tokens × 4096 (77 CLIP-L/G + 77 T5-XXL) and a pooled 2048
vector. DA-Flow feeds the **null prompt** for the feature analysis, training and inference of the flow network
(degraded frames make captions unreliable). DiT4SR publishes the two tensors as ``NULL_prompt_embeds.pt`` and
``NULL_pooled_prompt_embeds.pt`` (Hugging Face ``acceptee/DiT4SR``), so no text encoder is needed here.

Models whose widths differ from the published ones (the ``tiny`` preset) have no published null prompt; for them
:func:`zero_prompt` gives zeros of the right widths, and says so in the log.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

log = logging.getLogger(__name__)

NULL_PROMPT_FILES = ("NULL_prompt_embeds.pt", "NULL_pooled_prompt_embeds.pt")
NULL_PROMPT_PUBLISHED = (
    "the null-prompt embeddings NULL_prompt_embeds.pt and NULL_pooled_prompt_embeds.pt are "
    "published in the Hugging Face repository acceptee/DiT4SR"
)
PUBLISHED_TOKENS = 154


@dataclass(frozen=True)
class PromptEmbeds:
    """``embeds`` ``[L, joint_attention_dim]`` and ``pooled`` ``[pooled_projection_dim]`` for one prompt."""

    embeds: torch.Tensor
    pooled: torch.Tensor
    source: str = ""

    def __post_init__(self):
        if self.embeds.ndim != 2 or self.pooled.ndim != 1:
            raise ValueError(
                f"prompt embeddings must be [L, C] and [C'], got {tuple(self.embeds.shape)} and "
                f"{tuple(self.pooled.shape)} ({self.source})"
            )

    def check(self, joint_attention_dim: int, pooled_projection_dim: int) -> PromptEmbeds:
        """Raise unless the widths fit a DiT with these config values."""
        if self.embeds.shape[1] != joint_attention_dim or self.pooled.shape[0] != pooled_projection_dim:
            raise ValueError(
                f"prompt embeddings {tuple(self.embeds.shape)} + {tuple(self.pooled.shape)} ({self.source}) "
                f"do not fit a DiT with joint_attention_dim={joint_attention_dim}, "
                f"pooled_projection_dim={pooled_projection_dim}"
            )
        return self

    def batch(self, n: int, *, device=None, dtype=None) -> tuple[torch.Tensor, torch.Tensor]:
        """``[n, L, C]`` and ``[n, C']`` views on ``device``/``dtype``."""
        e = self.embeds.to(device=device, dtype=dtype)
        p = self.pooled.to(device=device, dtype=dtype)
        return e.unsqueeze(0).expand(n, -1, -1), p.unsqueeze(0).expand(n, -1)


def _read_tensor(path: Path, ndim: int) -> torch.Tensor:
    try:
        t = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"{path}: cannot read as a tensor file ({type(exc).__name__}: {exc})") from exc
    if isinstance(t, dict) and len(t) == 1:
        t = next(iter(t.values()))
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{path}: expected a tensor, found {type(t).__name__}")
    while t.ndim > ndim and t.shape[0] == 1:  # saved with a batch axis
        t = t[0]
    if t.ndim != ndim:
        raise ValueError(
            f"{path}: expected a {ndim}-D tensor (optionally with a leading batch axis of 1), got {tuple(t.shape)}"
        )
    return t.float()


def load_null_prompt(path: str | os.PathLike, pooled_path: str | os.PathLike | None = None) -> PromptEmbeds:
    """The published null prompt: a folder holding both files, or the two file paths."""
    path = Path(path)
    if path.is_dir():
        embeds_path, pooled = path / NULL_PROMPT_FILES[0], path / NULL_PROMPT_FILES[1]
    else:
        embeds_path = path
        pooled = Path(pooled_path) if pooled_path is not None else path.parent / NULL_PROMPT_FILES[1]
    for p in (embeds_path, pooled):
        if not p.is_file():
            raise FileNotFoundError(f"null-prompt file not found: {p} ({NULL_PROMPT_PUBLISHED})")
    embeds = PromptEmbeds(_read_tensor(embeds_path, 2), _read_tensor(pooled, 1), source=str(embeds_path))
    if embeds.embeds.shape[0] != PUBLISHED_TOKENS:
        log.warning(
            "%s: %d prompt tokens (the published null prompt has %d)",
            embeds_path,
            embeds.embeds.shape[0],
            PUBLISHED_TOKENS,
        )
    return embeds


def zero_prompt(joint_attention_dim: int, pooled_projection_dim: int, tokens: int = PUBLISHED_TOKENS) -> PromptEmbeds:
    """All-zero embeddings of the given widths: the explicit stand-in where no published null prompt fits."""
    log.info(
        "using an all-zero null prompt (%d x %d + %d); the published files fit the paper preset only",
        tokens,
        joint_attention_dim,
        pooled_projection_dim,
    )
    return PromptEmbeds(torch.zeros(tokens, joint_attention_dim), torch.zeros(pooled_projection_dim), source="zeros")
