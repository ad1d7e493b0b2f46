"""The diffusion feature encoder E_D of DA-Flow (paper Eq. 13): VAE + lifted DiT4SR + null prompt + sampler.

``DiffusionBackbone.features(frames)`` encodes the LQ frames of F-frame clips with the VAE (posterior mean),
runs the lifted DiT4SR's denoising from noise conditioned on them, and yields every step's taps (query/key of
chosen blocks, ``[B, F, h, w, C]`` on the 1/16 token grid). Frame sides must be multiples of 16 (VAE 8 × patch 2);
callers pad (:class:`daflow.models.raft.InputPadder` with ``multiple=16``).

Build it from published files with :meth:`DiffusionBackbone.from_pretrained` (``dit4sr_q``, the SD3.5 VAE, the
null prompt) or at a preset size with random weights with :meth:`DiffusionBackbone.from_preset`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence

import torch
import torch.nn as nn

from daflow.models.dit4sr import DIT4SR_PRESETS, DiT4SRTransformer, load_dit4sr
from daflow.models.prompt import PromptEmbeds, load_null_prompt, zero_prompt
from daflow.models.sampler import DEFAULT_SHIFT, DEFAULT_STEPS, DenoiseStep, denoise
from daflow.models.taps import TapSpec
from daflow.models.vae import TOKEN_STRIDE, VAE_PRESETS, build_vae, encode, load_vae

log = logging.getLogger(__name__)


class DiffusionBackbone(nn.Module):
    """``transformer`` (lifted DiT4SR), ``vae`` (SD3.5 AutoencoderKL) and the ``prompt`` every clip is given."""

    def __init__(self, transformer: DiT4SRTransformer, vae, prompt: PromptEmbeds):
        super().__init__()
        self.transformer = transformer
        self.vae = vae.eval().requires_grad_(False)
        cfg = transformer.config
        self.prompt = prompt.check(cfg.joint_attention_dim, cfg.pooled_projection_dim)
        self.origin = "given"  # where the weights came from, for records (e.g. "bundled:daflow-tiny")
        self.one_step_sigma: float | None = None  # σ* when the DiT was fine-tuned for the one-step restoration call
        self.fidelity = None  # the restorer's fidelity head (daflow.models.fidelity), when it has one
        self.gate = None  # the restorer's degradation gate (daflow.models.gate), when it has one

    @classmethod
    def from_preset(cls, name: str = "tiny", *, seed: int = 0) -> DiffusionBackbone:
        """Random weights at a preset size (``tiny`` or ``paper``), with an all-zero null prompt (logged)."""
        if name not in DIT4SR_PRESETS or name not in VAE_PRESETS:
            raise ValueError(f"unknown backbone preset {name!r}; choose one of {sorted(DIT4SR_PRESETS)}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            transformer = DiT4SRTransformer.from_config(name)
            vae = build_vae(name)
        cfg = transformer.config
        return cls(transformer, vae, zero_prompt(cfg.joint_attention_dim, cfg.pooled_projection_dim))

    @classmethod
    def from_pretrained(
        cls,
        dit4sr: str | os.PathLike,
        vae: str | os.PathLike,
        null_prompt: str | os.PathLike | None = None,
        *,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
        **overrides,
    ) -> DiffusionBackbone:
        """``dit4sr``: the published transformer (file or folder); ``vae``: SD3.5's VAE (file, ``vae`` folder or
        the SD3.5 folder); ``null_prompt``: the folder (or ``NULL_prompt_embeds.pt``) of the published null
        prompt; without it, zeros are used and the log says so. ``overrides`` set DiT4SR config flags."""
        transformer = load_dit4sr(dit4sr, dtype=dtype, device=device, **overrides)
        autoencoder = load_vae(vae, dtype=torch.float32, device=device)  # SD3's force_upcast: the VAE stays fp32
        cfg = transformer.config
        prompt = (
            load_null_prompt(null_prompt)
            if null_prompt is not None
            else zero_prompt(cfg.joint_attention_dim, cfg.pooled_projection_dim)
        )
        return cls(transformer, autoencoder, prompt)

    @property
    def device(self) -> torch.device:
        return next(self.transformer.parameters()).device

    def encode_lq(self, frames: torch.Tensor) -> torch.Tensor:
        """``[B, F, 3, H, W]`` RGB 0..255 → LQ latents ``[B·F, 16, H/8, W/8]`` (posterior mean, shifted and scaled)."""
        if frames.ndim != 5 or frames.shape[2] != 3:
            raise ValueError(f"frames must be [B, F, 3, H, W] RGB, got {tuple(frames.shape)}")
        h, w = frames.shape[-2:]
        if h % TOKEN_STRIDE or w % TOKEN_STRIDE:
            raise ValueError(
                f"frame sides must be multiples of {TOKEN_STRIDE} (VAE 8 x patch 2), got {h}x{w}; "
                "pad them first (InputPadder(shape, multiple=16))"
            )
        with torch.no_grad():
            return encode(self.vae, frames.flatten(0, 1).to(self.device))

    def features(
        self,
        frames: torch.Tensor,
        *,
        taps: TapSpec | None = None,
        steps: int = DEFAULT_STEPS,
        shift: float = DEFAULT_SHIFT,
        stop_after: int | None = None,
        seed: int | Sequence[int] = 0,
    ) -> Iterator[DenoiseStep]:
        """Yield each denoising step of ``frames`` ``[B, F, 3, H, W]`` (RGB 0..255) with its taps.

        The starting noise of clip ``i`` is drawn from its own seed (``seed[i]``, or ``seed + i`` for an int), so a
        clip's features do not depend on the other clips of the batch. ``taps``: default :class:`TapSpec` ()."""
        taps = TapSpec() if taps is None else taps
        lq = self.encode_lq(frames)
        b, f = frames.shape[:2]
        seeds = [seed + i for i in range(b)] if isinstance(seed, int) else [int(s) for s in seed]
        if len(seeds) != b:
            raise ValueError(f"{len(seeds)} seeds for {b} clips")
        noise = torch.cat([torch.randn((f, *lq.shape[1:]), generator=torch.Generator().manual_seed(s)) for s in seeds])
        yield from denoise(
            self.transformer,
            lq,
            self.prompt,
            num_frames=f,
            steps=steps,
            shift=shift,
            taps=taps,
            stop_after=stop_after,
            noise=noise,
        )
