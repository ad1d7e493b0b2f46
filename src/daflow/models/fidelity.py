"""The fidelity head of the tiny restorer: a pixel-space network that fuses the LQ frame with the diffusion output.

The one-step diffusion call (:mod:`daflow.restoration.diffusion`) gives a restored frame ``x̂_D`` that the VAE's
decoder limits and the DiT's small width blurs; the LQ frame ``x_LQ`` still holds detail that neither reproduces.
The head looks at both and predicts the final frame as a correction of the input, in the spirit of StableSR's
controllable feature wrapping and the LQ-aware decoders of real-world diffusion SR (a fidelity module trained with a
pixel loss beside a frozen diffusion prior)::

    x̂ = x_LQ + 127.5 · PixelShuffle₂( N( PixelUnshuffle₂( [x_LQ/127.5 − 1,  (x̂_D − x_LQ)/127.5] ) ) )

``N``: a 3×3 convolution to ``channels``, ``blocks`` residual blocks (conv–ReLU–conv), a 3×3 convolution to 12
channels, **zero-initialised**, so that an untrained head returns its input unchanged. It works at half resolution
(the pixel unshuffle), so frame sides must be even (callers pad). Trained by :mod:`daflow.train.fidelity` with an L1
loss to the clean frames while the DiT stays frozen. ``use_prior=False`` builds the same head blind to the diffusion
output (its second input zeroed): the control that says what the diffusion prior adds.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

WEIGHTS = "fidelity.safetensors"
CONFIG = "config.json"


@dataclass(frozen=True)
class FidelityConfig:
    channels: int = 48
    blocks: int = 6
    use_prior: bool = True

    def __post_init__(self):
        if self.channels < 1 or self.blocks < 0:
            raise ValueError(f"channels must be >= 1 and blocks >= 0, got {self.channels}, {self.blocks}")


FIDELITY_PRESETS = {"tiny": FidelityConfig()}


class _Block(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class FidelityHead(nn.Module):
    """``forward(lq, prior)``: ``[N, 3, H, W]`` RGB 0..255 each (H, W even) → the final frames ``[N, 3, H, W]``
    (0..255, unclamped); see the module docstring."""

    def __init__(self, config: FidelityConfig = FidelityConfig()):
        super().__init__()
        self.config = config
        c = config.channels
        self.conv_in = nn.Conv2d(6 * 4, c, 3, padding=1)
        self.blocks = nn.Sequential(*[_Block(c) for _ in range(config.blocks)])
        self.conv_out = nn.Conv2d(c, 3 * 4, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, lq: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        if lq.shape != prior.shape or lq.ndim != 4 or lq.shape[1] != 3:
            raise ValueError(f"lq and prior must both be [N, 3, H, W], got {tuple(lq.shape)} and {tuple(prior.shape)}")
        if lq.shape[-2] % 2 or lq.shape[-1] % 2:
            raise ValueError(
                f"frame sides must be even (the head works at half resolution), got {tuple(lq.shape[-2:])}"
            )
        hint = (prior - lq) / 127.5 if self.config.use_prior else torch.zeros_like(lq)
        x = F.pixel_unshuffle(torch.cat([lq / 127.5 - 1.0, hint], 1), 2)
        y = self.conv_out(self.blocks(F.relu(self.conv_in(x))))
        return lq + 127.5 * F.pixel_shuffle(y, 2)


def save_fidelity(head: FidelityHead, folder: str | os.PathLike) -> Path:
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG).write_text(json.dumps({"_class_name": "FidelityHead", **dataclasses.asdict(head.config)}))
    save_file({k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}, str(folder / WEIGHTS))
    return folder


def load_fidelity(folder: str | os.PathLike) -> FidelityHead:
    """A head saved by :func:`save_fidelity`; a missing or malformed file is one clear error naming it."""
    from daflow.models.weights import read_state_dict

    folder = Path(folder)
    config_path = folder / CONFIG
    try:
        data = json.loads(config_path.read_text())
        config = FidelityConfig(**{k: v for k, v in data.items() if k != "_class_name"})
    except (OSError, ValueError, TypeError) as e:
        raise ValueError(f"{config_path}: not a fidelity-head config ({e})") from e
    head = FidelityHead(config)
    head.load_state_dict(read_state_dict(folder / WEIGHTS, what="fidelity head"))
    return head.eval().requires_grad_(False)
