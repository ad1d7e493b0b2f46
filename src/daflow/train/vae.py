"""Stage 0 of the tiny recipe: train an SD3-layout VAE (the stand-in for SD3.5's, which the paper uses frozen).

The published VAE cannot be downloaded here, so the tiny world trains its own: the same ``AutoencoderKL`` layout at
the ``tiny`` widths, on HQ and LQ frames alike (DA-Flow encodes the LQ frames, DiT4SR's training both), with the
usual autoencoder objective: an L1 reconstruction loss on images in [−1, 1] through a posterior sample plus a small
KL term (``kl_weight``, 1e-6 as in Stable Diffusion's autoencoder training). No adversarial or perceptual term: the
VAE only has to give the DiT a faithful latent space, not photographic decodings. After training, the latent
scale and shift of the config are set from the training latents (SD3 chose its 1.5305 and 0.0609 the same way), so
that ``(z − shift)·scale`` has zero mean and unit variance as the diffusion schedule assumes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from daflow.models.vae import build_vae, load_vae, save_vae
from daflow.train.data import ClipSource, TrainingClips
from daflow.train.loop import Stage, TrainSettings, saved_as, step_generator, train_loop


@dataclass(frozen=True)
class VAETrainConfig(TrainSettings):
    steps: int = 2000
    batch: int = 4
    frames: int = 2
    crop: tuple[int, int] = (64, 64)
    lr: float = 1e-3
    weight_decay: float = 0.0
    kl_weight: float = 1e-6
    save_every: int = 500
    workers: int = 0
    calibration_clips: int = 16
    # which frames it learns to reconstruct ("hq" alone: SD3's VAE was trained on clean images)
    images: tuple[str, ...] = ("hq", "lq")

    crop_multiple: ClassVar[int] = 8

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "images", tuple(self.images))
        if not self.images or set(self.images) - {"hq", "lq"}:
            raise ValueError(f"images must be a non-empty subset of ('hq', 'lq'), got {self.images}")


RUN_KEYS = ("batch", "frames", "crop", "lr", "kl_weight", "seed", "data", "steps", "images")


def vae_loss(vae, images: torch.Tensor, generator: torch.Generator, *, kl_weight: float) -> torch.Tensor:
    """L1 reconstruction of ``images`` ``[N, 3, H, W]`` (0..255) through a posterior sample + ``kl_weight``·KL."""
    x = images / 127.5 - 1.0
    dist = vae.encode(x).latent_dist
    z = dist.mean + dist.std * torch.randn(dist.mean.shape, generator=generator).to(x.device)
    recon = vae.decode(z).sample
    kl = 0.5 * (dist.mean.pow(2) + dist.var - 1.0 - dist.logvar).sum(dim=(1, 2, 3)).mean()
    return (recon - x).abs().mean() + kl_weight * kl


def calibrate(vae, dataset: TrainingClips, clips: int) -> tuple[float, float]:
    """``(scaling_factor, shift_factor)`` making the posterior means of ``clips`` held-in samples zero-mean, unit-std."""
    with torch.no_grad():
        zs = []
        for i in range(clips):
            item = dataset[2**60 + i]
            for key in ("hq", "lq"):
                if key in item:
                    zs.append(vae.encode(item[key] / 127.5 - 1.0).latent_dist.mean.flatten())
        z = torch.cat(zs)
    return float(1.0 / z.std()), float(z.mean())


def train_vae(
    source: ClipSource,
    run: str | Path,
    config: VAETrainConfig,
    *,
    preset: str = "tiny",
    device: str | torch.device = "cpu",
    progress: bool = True,
    stop_at: int | None = None,
) -> dict:
    """Train (or resume) a VAE at ``preset`` size into ``run/vae`` (published layout, calibrated latent scale)."""
    device = torch.device(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        vae = build_vae(preset).to(device).train()
    dataset = TrainingClips(source, crop=config.crop, seed=config.seed, require=("hq",))

    def loss(module, batch, step: int, rank: int) -> torch.Tensor:
        g = step_generator(config.seed, step, rank, 17)
        images = torch.cat([batch[k].flatten(0, 1) for k in config.images if k in batch])
        return vae_loss(module, images, g, kl_weight=config.kl_weight)

    def final_model(module, folder: Path) -> None:
        """The final model: the latent scale and shift set from its own latents."""
        module.eval()
        scale, shift = calibrate(module, dataset, config.calibration_clips)
        module.register_to_config(scaling_factor=scale, shift_factor=shift)
        save_vae(module, folder / "vae")

    stage = Stage(
        name="vae",
        module=vae,
        dataset=dataset,
        loss=loss,
        make_optimizer=lambda ps: torch.optim.AdamW(ps, lr=config.lr, weight_decay=config.weight_decay),
        lr=lambda step: config.lr * 0.5 * (1 + np.cos(np.pi * step / config.steps)),  # cosine decay
        **saved_as(vae, "vae", save_vae, load_vae),
        final_model=final_model,
        record={
            **dataclasses.asdict(config),
            "data": source.spec,
            "preset": preset,
        },
        run_keys=RUN_KEYS,
    )
    return train_loop(stage, run, config, device=device, progress=progress, stop_at=stop_at)
