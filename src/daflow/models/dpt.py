"""DPT upsampling heads (paper §4.4.1, Eq. 14; App. A.0.2): L tapped 1/16-grid maps → one ``[B, c, H/8, W/8]`` map.

DA-Flow follows VGGT's ``DPTHead`` in feature-only mode (``docs/models.md``, DPT heads), with
parameter names as VGGT's so that heads trained with that code load by name:

1. each level's tokens ``[B, h, w, C]`` pass one shared ``norm`` (LayerNorm over C) and a 1×1 projection
   ``projects.i`` to ``out_channels[i]``; optionally a sinusoidal UV position embedding (× 0.1) is added;
2. ``resize_layers.i`` changes the level's scale: ×4 / ×2 by a transposed conv, ×1 identity, ×0.5 a stride-2
   conv. DA-Flow's scales (1, 1, 2, 2) put the first two levels on the 1/16 grid and the last two on 1/8;
3. ``scratch.layer{i}_rn`` (3×3, no bias) maps every level to ``features`` channels; fusion from the last level
   to the first (``scratch.refinenet{L..1}``): residual conv units, bilinear resize (``align_corners=True``) to
   the next level's size (the first level ×2), 1×1 conv;
4. ``scratch.output_conv1`` (3×3), a final bilinear resize to exactly ``(H/8, W/8)``, the position embedding again.

VGGT's residual units use an in-place ReLU, so their skip connection adds ``relu(x)``, not ``x``; this is kept
(``relu_skip=True``) to reproduce the reference numerically. :class:`BilinearHead` is the ablation of App. C.3
(no DPT: LayerNorm, concatenation, 1×1 convolution, bilinear upsampling).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class DPTConfig:
    """One head: ``dim_in`` (token width, 1536 for DiT4SR's Q/K), ``features`` (output channels c), per-level
    ``out_channels`` and ``scales`` (relative to the token grid), ``pos_embed`` (VGGT default: on)."""

    dim_in: int = 1536
    features: int = 256
    out_channels: tuple[int, ...] = (256, 512, 1024, 1024)
    scales: tuple[float, ...] = (1, 1, 2, 2)
    pos_embed: bool = True
    relu_skip: bool = True

    def __post_init__(self):
        object.__setattr__(self, "out_channels", tuple(int(c) for c in self.out_channels))
        object.__setattr__(self, "scales", tuple(float(s) for s in self.scales))
        if len(self.out_channels) != len(self.scales) or not self.scales:
            raise ValueError(f"out_channels {self.out_channels} and scales {self.scales} must have one entry per level")
        bad = [s for s in self.scales if s not in (0.5, 1.0, 2.0, 4.0)]
        if bad:
            raise ValueError(f"level scales must be 0.5, 1, 2 or 4 (VGGT's resize layers), got {bad}")


def _resize_layer(channels: int, scale: float) -> nn.Module:
    if scale == 4:
        return nn.ConvTranspose2d(channels, channels, kernel_size=4, stride=4)
    if scale == 2:
        return nn.ConvTranspose2d(channels, channels, kernel_size=2, stride=2)
    if scale == 1:
        return nn.Identity()
    return nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=1)


class ResidualConvUnit(nn.Module):
    """ReLU → 3×3 → ReLU → 3×3, plus the skip (``relu(x)`` when ``relu_skip``, as VGGT's in-place ReLU gives)."""

    def __init__(self, features: int, *, relu_skip: bool = True):
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)
        self.relu_skip = relu_skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu(x)
        out = self.conv2(F.relu(self.conv1(a)))
        return out + (a if self.relu_skip else x)


class FeatureFusionBlock(nn.Module):
    """``out_conv(resize(RCU2(x + RCU1(skip))))``; the last level has no skip input (``has_residual=False``)."""

    def __init__(self, features: int, *, has_residual: bool = True, relu_skip: bool = True):
        super().__init__()
        self.has_residual = has_residual
        if has_residual:
            self.resConfUnit1 = ResidualConvUnit(features, relu_skip=relu_skip)
        self.resConfUnit2 = ResidualConvUnit(features, relu_skip=relu_skip)
        self.out_conv = nn.Conv2d(features, features, 1)

    def forward(
        self, x: torch.Tensor, skip: torch.Tensor | None = None, *, size: tuple[int, int] | None = None
    ) -> torch.Tensor:
        if self.has_residual:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        size = size if size is not None else (2 * x.shape[-2], 2 * x.shape[-1])
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
        return self.out_conv(x)


def uv_position_embedding(
    channels: int, height: int, width: int, aspect_ratio: float, *, device=None, dtype=torch.float32
) -> torch.Tensor:
    """VGGT's UV embedding ``[channels, height, width]``: a grid normalised so the image diagonal spans 2, each axis
    encoded with ``channels/2`` sin/cos features of frequencies ``100^(−2k/(channels/2))``."""
    if channels % 4:
        raise ValueError(f"position embedding needs channels divisible by 4, got {channels}")
    diag = (aspect_ratio**2 + 1.0) ** 0.5
    sx, sy = aspect_ratio / diag, 1.0 / diag
    xs = torch.linspace(-sx * (width - 1) / width, sx * (width - 1) / width, width, dtype=torch.float64, device=device)
    ys = torch.linspace(
        -sy * (height - 1) / height, sy * (height - 1) / height, height, dtype=torch.float64, device=device
    )
    half = channels // 2
    omega = 1.0 / 100.0 ** (torch.arange(half // 2, dtype=torch.float64, device=device) / (half / 2.0))

    def encode(pos: torch.Tensor) -> torch.Tensor:  # [n] -> [n, half]
        out = pos[:, None] * omega[None]
        return torch.cat([out.sin(), out.cos()], dim=1)

    ex = encode(xs)[None, :, :].expand(height, width, half)
    ey = encode(ys)[:, None, :].expand(height, width, half)
    return torch.cat([ex, ey], dim=-1).permute(2, 0, 1).to(dtype)


class DPTHead(nn.Module):
    """Levels ``[B, h, w, C]`` (token grid, one per tapped block) → features ``[B, features, H/8, W/8]``."""

    def __init__(self, config: DPTConfig | None = None, **keys):
        super().__init__()
        if config is not None and keys:
            raise ValueError("give either a DPTConfig or its keys, not both")
        self.config = config = config if config is not None else DPTConfig(**keys)
        self.norm = nn.LayerNorm(config.dim_in)
        self.projects = nn.ModuleList(nn.Conv2d(config.dim_in, c, 1) for c in config.out_channels)
        self.resize_layers = nn.ModuleList(_resize_layer(c, s) for c, s in zip(config.out_channels, config.scales))
        levels = len(config.scales)
        self.scratch = nn.Module()
        for i, c in enumerate(config.out_channels, start=1):
            setattr(self.scratch, f"layer{i}_rn", nn.Conv2d(c, config.features, 3, padding=1, bias=False))
            setattr(
                self.scratch,
                f"refinenet{i}",
                FeatureFusionBlock(config.features, has_residual=i < levels, relu_skip=config.relu_skip),
            )
        self.scratch.output_conv1 = nn.Conv2d(config.features, config.features, 3, padding=1)

    def _pos(self, x: torch.Tensor, aspect: float) -> torch.Tensor:
        if not self.config.pos_embed:
            return x
        pe = uv_position_embedding(x.shape[1], x.shape[-2], x.shape[-1], aspect, device=x.device, dtype=x.dtype)
        return x + 0.1 * pe

    def forward(self, levels: Sequence[torch.Tensor], image_size: tuple[int, int]) -> torch.Tensor:
        """``levels``: L tensors ``[B, h, w, dim_in]``; ``image_size`` (H, W) of the (padded) input frames."""
        cfg = self.config
        if len(levels) != len(cfg.scales):
            raise ValueError(f"this DPT head takes {len(cfg.scales)} levels, got {len(levels)}")
        big_h, big_w = image_size
        aspect = big_w / big_h
        maps = []
        for i, tokens in enumerate(levels):
            if tokens.ndim != 4 or tokens.shape[-1] != cfg.dim_in or tokens.shape[:3] != levels[0].shape[:3]:
                raise ValueError(
                    f"level {i} must be [B, h, w, {cfg.dim_in}] like level 0 {tuple(levels[0].shape)}, "
                    f"got {tuple(tokens.shape)}"
                )
            x = self.norm(tokens).permute(0, 3, 1, 2)
            x = self._pos(self.projects[i](x), aspect)
            maps.append(self.resize_layers[i](x))
        rn = [getattr(self.scratch, f"layer{i + 1}_rn")(m) for i, m in enumerate(maps)]
        n = len(rn)
        out = getattr(self.scratch, f"refinenet{n}")(rn[-1], size=rn[-2].shape[-2:] if n > 1 else None)
        for i in range(n - 1, 0, -1):  # refinenet{i} fuses level i (1-based) and resizes to level i-1
            size = rn[i - 2].shape[-2:] if i > 1 else None
            out = getattr(self.scratch, f"refinenet{i}")(out, rn[i - 1], size=size)
        out = self.scratch.output_conv1(out)
        out = F.interpolate(out, size=(big_h // 8, big_w // 8), mode="bilinear", align_corners=True)
        return self._pos(out, aspect)


class BilinearHead(nn.Module):
    """App. C.3's alternative: shared LayerNorm, channel concatenation of the L levels, 1×1 convolution to
    ``features``, bilinear upsampling to ``(H/8, W/8)``."""

    def __init__(self, config: DPTConfig | None = None, **keys):
        super().__init__()
        self.config = config = config if config is not None else DPTConfig(**keys)
        self.norm = nn.LayerNorm(config.dim_in)
        self.proj = nn.Conv2d(config.dim_in * len(config.scales), config.features, 1)

    def forward(self, levels: Sequence[torch.Tensor], image_size: tuple[int, int]) -> torch.Tensor:
        if len(levels) != len(self.config.scales):
            raise ValueError(f"this head takes {len(self.config.scales)} levels, got {len(levels)}")
        x = torch.cat([self.norm(t).permute(0, 3, 1, 2) for t in levels], dim=1)
        x = self.proj(x)
        return F.interpolate(x, size=(image_size[0] // 8, image_size[1] // 8), mode="bilinear", align_corners=False)
