"""Fine-tune the lifted restorer for ``daflow restore``'s one-step mode (:mod:`daflow.restoration.diffusion`).

The call being trained: the LQ latent is the DiT's noisy input at level σ* and the restored latent is one Euler step
to σ = 0 from there, a residual over the LQ latent (zero velocity keeps the input)::

    ẑ₀ = z_LQ − σ*·v(z_LQ, z_LQ, σ*)                     (latent residual)
    x̂  = x_LQ + D(ẑ₀) − D(z_LQ)                          (image residual: only the DiT's change passes the decoder)

and the loss, per step over B clips of F frames (the whole clip in one lifted call)::

    L = ‖ẑ₀ − z_HQ‖² + λ·|x̂ − x_HQ|₁        (latents: the VAE's posterior mean; images in 0..1)

The image residual keeps what the VAE cannot reconstruct of the input (its fine texture, or its noise) and lets the
decoded-image term (λ = ``image_weight``) fight for fidelity in pixels, where PSNR and SSIM are measured. Training
clips are a mixture of degradations (:class:`daflow.train.data.MixedClips`): the recipe's ``realbasicvsr`` mirror and
milder ones (``codec``, ``mild``), so that the restorer learns to leave a good input nearly alone.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch

from daflow.models.backbone import DiffusionBackbone
from daflow.models.vae import TOKEN_STRIDE, encode
from daflow.train.loop import TrainSettings, train_loop

#: settings that change what is trained; a resumed run must keep them
RUN_KEYS = ("batch", "frames", "crop", "lr", "warmup", "sigma", "image_weight", "seed", "data", "model")


@dataclass(frozen=True)
class OneStepCallSettings(TrainSettings):
    """What the restorer's stages around the one-step call share (this fine-tune and the fidelity head's,
    :mod:`daflow.train.fidelity`): clips of ``frames`` frames cropped to ``crop``, and ``sigma``, σ* of the call."""

    batch: int = 4
    frames: int = 3
    crop: tuple[int, int] = (64, 64)
    sigma: float = 0.5
    save_every: int = 500

    crop_multiple: ClassVar[int] = TOKEN_STRIDE

    def __post_init__(self):
        super().__post_init__()
        if not 0 < self.sigma <= 1:
            raise ValueError(f"sigma must lie in (0, 1], got {self.sigma}")


@dataclass(frozen=True)
class OneStepConfig(OneStepCallSettings):
    """``image_weight``: λ of the module docstring; the learning rate rises linearly over ``warmup`` steps, then
    stays."""

    steps: int = 4000
    lr: float = 1e-3
    warmup: int = 100
    image_weight: float = 5.0

    def __post_init__(self):
        super().__post_init__()
        if self.image_weight < 0:
            raise ValueError(f"image_weight must be >= 0, got {self.image_weight}")


def one_step_loss(
    backbone: DiffusionBackbone, transformer, hq: torch.Tensor, lq: torch.Tensor, config: OneStepConfig
) -> torch.Tensor:
    """L of the module docstring for clips ``hq``/``lq`` ``[B, F, 3, H, W]`` (0..255)."""
    from daflow.restoration.diffusion import one_step_x0, residual_image

    b, f = hq.shape[:2]
    hq, lq = hq.flatten(0, 1), lq.flatten(0, 1)
    with torch.no_grad():
        z_hq, z_lq = encode(backbone.vae, hq).float(), encode(backbone.vae, lq).float()
    text, pooled = backbone.prompt.batch(b, device=z_lq.device, dtype=torch.float32)
    z0 = one_step_x0(transformer, z_lq, text, pooled, sigma=config.sigma, num_frames=f)
    loss = (z0 - z_hq).pow(2).mean()
    if config.image_weight > 0:
        image = residual_image(backbone.vae, lq, z0, z_lq)  # D(z_LQ) has no graph: z_LQ and the VAE are frozen
        loss = loss + config.image_weight * ((image - hq) / 255.0).abs().mean()
    return loss


def train_one_step(
    backbone: DiffusionBackbone,
    dataset,
    run: str | Path,
    config: OneStepConfig,
    *,
    data_spec: str,
    model_info: dict | None = None,
    progress: bool = True,
    stop_at: int | None = None,
) -> dict:
    """Train (or resume) the one-step fine-tune into ``run`` on ``dataset`` (a
    :class:`~daflow.train.data.TrainingClips`-like dataset giving ``hq`` and ``lq``); every DiT parameter trains."""
    from daflow.train.lift import dit_stage

    transformer = backbone.transformer.to(torch.float32).train()
    params = [p for p in transformer.parameters()]
    for p in params:
        p.requires_grad_(True)
    stage = dit_stage(
        "one_step",
        transformer,
        params,
        dataset,
        lambda module, batch, step, rank: one_step_loss(backbone, module, batch["hq"], batch["lq"], config),
        config,
        lr=lambda step: config.lr * min(1.0, (step + 1) / max(config.warmup, 1)),
        record={**dataclasses.asdict(config), "data": data_spec, "model": model_info or {}},
        run_keys=RUN_KEYS,
    )
    summary = train_loop(stage, run, config, device=backbone.device, progress=progress, stop_at=stop_at)
    transformer.eval().requires_grad_(False)
    return summary
