"""The SD3.5 VAE (paper Eq. 2): frames to the 16-channel latents the DiT works on, at 1/8 of the image.

DiT4SR uses Stable Diffusion 3.5-medium's ``AutoencoderKL`` unchanged (``docs/models.md``):
four ``DownEncoderBlock2D``/``UpDecoderBlock2D`` with widths 128/256/512/512, two resnets per block, 16 latent
channels, no quant convs. A latent is ``z = (E(x) − shift) · scale`` with ``x`` in [−1, 1], shift 0.0609 and scale
1.5305; decoding inverts it. DA-Flow encodes the LQ frames with the posterior **mean** (deterministic); DiT4SR's
own training data and restoration sampled the posterior, available as ``sample=True``.

The published weights are ``vae/diffusion_pytorch_model.safetensors`` (+ ``config.json``) of
``stabilityai/stable-diffusion-3.5-medium``; diffusers' ``AutoencoderKL`` has the same parameter names.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from diffusers import AutoencoderKL

from daflow.files import read_json
from daflow.models.weights import check_state_dict, read_diffusers_model, save_diffusers_model

VAE_PUBLISHED = (
    "the published VAE is vae/diffusion_pytorch_model.safetensors (with its config.json) of the "
    "Hugging Face repository stabilityai/stable-diffusion-3.5-medium"
)
#: the image side must be a multiple of this for a latent grid that the DiT's 2×2 patches tile (VAE 8 × patch 2)
TOKEN_STRIDE = 16


#: ``AutoencoderKL`` settings every SD3 VAE has (not in :class:`VAEConfig`)
SD3_FIXED = {
    "in_channels": 3,
    "out_channels": 3,
    "use_quant_conv": False,
    "use_post_quant_conv": False,
    "act_fn": "silu",
    "mid_block_add_attention": True,
}


@dataclass(frozen=True)
class VAEConfig:
    """The keys of SD3.5-medium's ``vae/config.json`` that shape the model (defaults = published)."""

    block_out_channels: tuple[int, ...] = (128, 256, 512, 512)
    layers_per_block: int = 2
    latent_channels: int = 16
    norm_num_groups: int = 32
    scaling_factor: float = 1.5305
    shift_factor: float = 0.0609
    sample_size: int = 1024

    def __post_init__(self):
        object.__setattr__(self, "block_out_channels", tuple(int(c) for c in self.block_out_channels))
        bad = [c for c in self.block_out_channels if c % self.norm_num_groups]
        if bad:
            raise ValueError(f"norm_num_groups ({self.norm_num_groups}) must divide every block width, not {bad}")

    @classmethod
    def from_json(cls, path_or_dict) -> VAEConfig:
        """From a diffusers ``config.json``: keys of other ``AutoencoderKL`` variants must have SD3's values."""

        data = path_or_dict
        if isinstance(path_or_dict, (str, os.PathLike)):
            data = read_json(path_or_dict, what="VAE config.json")
        wrong = {k: data[k] for k, v in SD3_FIXED.items() if k in data and data[k] != v}
        if wrong:
            raise ValueError(f"VAE config {wrong} differs from SD3's ({ {k: SD3_FIXED[k] for k in wrong} })")
        import inspect

        from daflow.configs import config_from_dict

        # every other AutoencoderKL argument (SD3's fixed choices checked above, latents_mean/std, ...) is known
        known = set(inspect.signature(AutoencoderKL.__init__).parameters) - {"self"}
        return config_from_dict(cls, data, what="VAE config", ignored=known)

    def to_dict(self) -> dict:
        from daflow.configs import config_to_dict

        return config_to_dict(self)


VAE_PRESETS: dict[str, VAEConfig] = {
    "paper": VAEConfig(),
    "tiny": VAEConfig(block_out_channels=(8, 16, 32, 32), layers_per_block=1, norm_num_groups=4),
    # the tiny restorer's: wide enough to reconstruct 128×128 frames well, still ~1 M parameters
    "small": VAEConfig(block_out_channels=(32, 64, 64, 64), layers_per_block=1, norm_num_groups=8),
}


def build_vae(config: VAEConfig | str = "paper") -> AutoencoderKL:
    """diffusers' ``AutoencoderKL`` with SD3's fixed choices (4 blocks, no quant convs, mid-block attention)."""
    if isinstance(config, str):
        if config not in VAE_PRESETS:
            raise ValueError(f"unknown VAE preset {config!r}; choose one of {sorted(VAE_PRESETS)}")
        config = VAE_PRESETS[config]
    n = len(config.block_out_channels)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=config.block_out_channels,
        layers_per_block=config.layers_per_block,
        latent_channels=config.latent_channels,
        norm_num_groups=config.norm_num_groups,
        sample_size=config.sample_size,
        scaling_factor=config.scaling_factor,
        shift_factor=config.shift_factor,
        use_quant_conv=False,
        use_post_quant_conv=False,
        mid_block_add_attention=True,
    )


def load_vae(
    path: str | os.PathLike,
    *,
    config: VAEConfig | None = None,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> AutoencoderKL:
    """The published SD3.5 VAE: its safetensors file, its ``vae`` folder, or the SD3.5 pipeline folder."""
    cfg_path, sd, files = read_diffusers_model(path, subfolder="vae", what="SD3.5 VAE", published=VAE_PUBLISHED)
    if config is None:
        config = VAEConfig.from_json(cfg_path) if cfg_path is not None else VAE_PRESETS["paper"]
    with torch.device("meta"):
        vae = build_vae(config)
    check_state_dict(vae.state_dict(), sd, prefix=f"{files[0]} does not fit the SD3 VAE {config}", source="file")
    vae.load_state_dict({k: v.to(dtype) for k, v in sd.items()}, strict=True, assign=True)
    return vae.to(device).eval().requires_grad_(False)


def save_vae(vae: AutoencoderKL, folder: str | os.PathLike) -> os.PathLike:
    """Save in the published ``vae/`` layout, loadable by :func:`load_vae` and ``--vae``."""
    config = VAEConfig.from_json(dict(vae.config))
    return save_diffusers_model(folder, vae.state_dict(), {**SD3_FIXED, **config.to_dict()}, class_name="AutoencoderKL")


def _check_images(images: torch.Tensor) -> None:
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be [N, 3, H, W], got {tuple(images.shape)}")
    if images.shape[-2] % 8 or images.shape[-1] % 8:
        raise ValueError(f"image sides must be multiples of 8 for the VAE, got {tuple(images.shape[-2:])}")


def encode(
    vae: AutoencoderKL, images: torch.Tensor, *, sample: bool = False, generator: torch.Generator | None = None
) -> torch.Tensor:
    """RGB ``[N, 3, H, W]`` in 0..255 → latents ``[N, 16, H/8, W/8]``, ``(mean − shift) · scale`` (Eq. 2).

    ``sample=True`` draws from the posterior instead of taking its mean, as DiT4SR did for its training data.
    """
    _check_images(images)
    x = images.to(device=vae.device, dtype=vae.dtype) / 127.5 - 1.0
    dist = vae.encode(x).latent_dist
    z = dist.sample(generator) if sample else dist.mean
    return (z - vae.config.shift_factor) * vae.config.scaling_factor


def decode(vae: AutoencoderKL, latents: torch.Tensor) -> torch.Tensor:
    """Latents ``[N, 16, h, w]`` → RGB ``[N, 3, 8h, 8w]`` in 0..255 (clamped), inverse of :func:`encode`."""
    z = latents.to(device=vae.device, dtype=vae.dtype) / vae.config.scaling_factor + vae.config.shift_factor
    return ((vae.decode(z).sample.float() + 1.0) * 127.5).clamp(0, 255)


def decode_differentiable(vae: AutoencoderKL, latents: torch.Tensor) -> torch.Tensor:
    """:func:`decode` without the clamp, so that gradients reach ``latents`` everywhere (image-space guidance,
    :mod:`daflow.restoration.guidance`): RGB ``[N, 3, 8h, 8w]`` on the 0..255 scale."""
    z = latents.to(device=vae.device, dtype=vae.dtype) / vae.config.scaling_factor + vae.config.shift_factor
    return (vae.decode(z).sample.float() + 1.0) * 127.5
