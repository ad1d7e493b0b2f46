"""SEA-RAFT (Wang, Lipson & Deng, ECCV 2024), the teacher of DA-Flow's pseudo ground truth (paper §4.4, App. A).

Attribute names equal the official ``princeton-vl/SEA-RAFT`` code so that its checkpoints (for example
``Tartan-C-T-TSKH-spring540x960-M.pth``, 472 entries, no ``module.`` prefix) load strictly by name
(``docs/models.md``). Differences from RAFT:

- ``cnet`` is a BatchNorm ResNet (``resnet18``: 2-2-2 blocks, ``resnet34``: 3-4-6) on both frames stacked
  (6 channels), followed by ``init_conv`` and a split into hidden state and context, **without** tanh/ReLU.
- ``fnet`` is the same ResNet on one frame; the correlation pyramid correlates with bilinearly halved target
  features (``pyramid="features"`` in :mod:`daflow.models.corr`).
- Iteration 0 regresses a flow directly from the hidden state; each of the ``iters`` updates is the RAFT
  motion encoder followed by ``num_blocks`` ConvNeXt blocks instead of a GRU.
- ``flow_head`` outputs 6 channels: the flow update (2), the mixture weights' logits (2) and the raw log-scales
  (2) of a mixture of two Laplace distributions (:func:`laplace_mixture_nll`, :func:`uncertainty`).

No pretrained ImageNet weights are fetched: the official constructor downloads ResNet weights only to initialise
a model that a checkpoint then overwrites; here construction never touches the network.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from daflow.files import read_json
from daflow.flow.warp import coords_grid
from daflow.models.corr import build_corr
from daflow.models.precision import autocast
from daflow.models.raft import BasicMotionEncoder, InputPadder, convex_upsample
from daflow.models.weights import load_strict, read_state_dict

SEA_RAFT_PUBLISHED = (
    "the official checkpoints (e.g. Tartan-C-T-TSKH-spring540x960-M.pth) are linked from "
    "https://github.com/princeton-vl/SEA-RAFT (Google Drive) and on Hugging Face as "
    "MemorySlices/Tartan-C-T-TSKH-spring540x960-M"
)

RESNET_BLOCKS = {"resnet18": (2, 2, 2), "resnet34": (3, 4, 6)}


#: keys of the official ``config/{train,eval}/*.json`` files that do not shape the model (princeton-vl/SEA-RAFT)
OFFICIAL_TRAINING_KEYS = (
    "name",
    "dataset",
    "gpus",
    "image_size",
    "batch_size",
    "epsilon",
    "lr",
    "wdecay",
    "dropout",
    "clip",
    "gamma",
    "num_steps",
    "restore_ckpt",
    "coarse_config",
    "mixed_precision",
    "suffix",
)


@dataclass(frozen=True)
class SEARAFTConfig:
    """The architecture and inference fields of an official SEA-RAFT JSON config (training fields ignored).

    ``scale`` is the evaluation resize exponent: inputs are resized by ``2**scale`` before the model and the
    flow is resized back (SEA-RAFT's ``calc_flow``; the Spring configs use -1, i.e. half resolution).
    """

    pretrain: str = "resnet34"
    initial_dim: int = 64
    block_dims: tuple[int, int, int] = (64, 128, 256)
    dim: int = 128
    radius: int = 4
    num_blocks: int = 2
    iters: int = 4
    use_var: bool = True
    var_min: float = 0.0
    var_max: float = 10.0
    scale: int = 0

    def __post_init__(self):
        if self.pretrain not in RESNET_BLOCKS:
            raise ValueError(f"SEA-RAFT pretrain must be one of {sorted(RESNET_BLOCKS)}, got {self.pretrain!r}")
        if len(self.block_dims) != 3:
            raise ValueError(f"SEA-RAFT block_dims must have 3 entries, got {self.block_dims}")
        object.__setattr__(self, "block_dims", tuple(int(d) for d in self.block_dims))

    @classmethod
    def from_json(cls, path_or_dict) -> SEARAFTConfig:
        """From an official ``config/eval/*.json`` (or its dict): its training settings are known and ignored; any
        other unknown key is refused (:func:`daflow.configs.config_from_dict`)."""
        data = path_or_dict
        if isinstance(path_or_dict, (str, os.PathLike)):
            data = read_json(path_or_dict, what="SEA-RAFT config")
        from daflow.configs import config_from_dict

        return config_from_dict(cls, data, what="SEA-RAFT config", ignored=OFFICIAL_TRAINING_KEYS)

    def to_dict(self) -> dict:
        from daflow.configs import config_to_dict

        return config_to_dict(self)


#: Official eval configs. S and M are the released weights at 4 iterations; L is **the M weights** at 12.
#: ``spring-m`` is ``config/eval/spring-M.json``: M at half resolution, the paper's pseudo-ground-truth teacher
#: (App. A: 4 iterations for the analysis, 20 for training labels).
SEA_RAFT_PRESETS: dict[str, SEARAFTConfig] = {
    "sea-raft-s": SEARAFTConfig(pretrain="resnet18", iters=4),
    "sea-raft-m": SEARAFTConfig(pretrain="resnet34", iters=4),
    "sea-raft-l": SEARAFTConfig(pretrain="resnet34", iters=12),
    "spring-m": SEARAFTConfig(pretrain="resnet34", iters=4, scale=-1),
    "tiny": SEARAFTConfig(
        pretrain="resnet18", initial_dim=16, block_dims=(16, 24, 32), dim=32, radius=3, num_blocks=1, iters=4
    ),
}


def get_sea_raft_config(name: str) -> SEARAFTConfig:
    try:
        return SEA_RAFT_PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown SEA-RAFT preset {name!r}; choose one of {sorted(SEA_RAFT_PRESETS)}") from None


# ------------------------------------------------------------------------------------------------ modules


class BasicBlock(nn.Module):
    """ResNet basic block with BatchNorm; the stride/width-changing shortcut's norm is registered twice
    (``bn3`` and ``downsample.1``) as in the official code."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1)
        self.bn1, self.bn2 = nn.BatchNorm2d(planes), nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_planes != planes:
            self.bn3 = nn.BatchNorm2d(planes)
            self.downsample = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride), self.bn3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        if self.downsample is not None:
            x = self.downsample(x)
        return self.relu(x + y)


class ResNetFPN(nn.Module):
    """``[B, input_dim, H, W]`` → ``[B, output_dim, H/8, W/8]``: stem (stride 2), three stages (strides 1, 2, 2),
    1×1 ``final_conv``. Despite its name there is no feature pyramid."""

    def __init__(self, config: SEARAFTConfig, *, input_dim: int, output_dim: int):
        super().__init__()
        self.conv1 = nn.Conv2d(input_dim, config.initial_dim, 7, stride=2, padding=3)
        self.bn1 = nn.BatchNorm2d(config.initial_dim)
        self.relu = nn.ReLU(inplace=True)
        in_planes = config.initial_dim
        for i, (n, dim, stride) in enumerate(zip(RESNET_BLOCKS[config.pretrain], config.block_dims, (1, 2, 2))):
            blocks = [BasicBlock(in_planes, dim, stride)] + [BasicBlock(dim, dim) for _ in range(n - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            in_planes = dim
        self.final_conv = nn.Conv2d(in_planes, output_dim, 1)
        for m in self.modules():  # the official initialisation, used when no checkpoint is loaded
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        return self.final_conv(self.layer3(self.layer2(self.layer1(x))))


class ConvNextBlock(nn.Module):
    """ConvNeXt block (depthwise 7×7, LayerNorm, 4× MLP with GELU, layer scale ``gamma``, residual), then a 1×1
    ``final`` conv from ``dim`` to ``output_dim`` channels."""

    def __init__(self, dim: int, output_dim: int, layer_scale_init: float = 1e-6):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * output_dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * output_dim, dim)
        self.gamma = nn.Parameter(layer_scale_init * torch.ones(dim))
        self.final = nn.Conv2d(dim, output_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)  # [B, H, W, C]
        y = self.gamma * self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        return self.final(x + y.permute(0, 3, 1, 2))


class UpdateBlock(nn.Module):
    """Motion encoder, then ConvNeXt refinement of the hidden state from ``[net, context, motion]``."""

    def __init__(self, cor_planes: int, dim: int, num_blocks: int):
        super().__init__()
        self.encoder = BasicMotionEncoder(cor_planes, dim)
        self.refine = nn.ModuleList(ConvNextBlock(3 * dim, dim) for _ in range(num_blocks))

    def forward(self, net: torch.Tensor, context: torch.Tensor, corr: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        inp = torch.cat([context, self.encoder(flow, corr)], dim=1)
        for block in self.refine:
            net = block(torch.cat([net, inp], dim=1))
        return net


# ------------------------------------------------------------------------------------------------ mixture of Laplace


def laplace_log_scales(info: torch.Tensor, *, var_min: float = 0.0, var_max: float = 10.0) -> torch.Tensor:
    """``info`` ``[B, 4, H, W]`` (weight logits 2, raw log b 2) → clamped log-scales ``[B, 2, H, W]``: the first
    component in [0, var_max] (large b), the second in [var_min, 0] (small b; fixed b = 1 when var_min = 0)."""
    raw = info[:, 2:]
    return torch.stack([raw[:, 0].clamp(0, var_max), raw[:, 1].clamp(var_min, 0)], dim=1)


def uncertainty(info: torch.Tensor, *, var_min: float = 0.0, var_max: float = 10.0) -> torch.Tensor:
    """SEA-RAFT's uncertainty map ``Σ_k softmax(w)_k · log b_k`` ``[B, 1, H, W]`` (its ``custom.py`` heat map)."""
    log_b = laplace_log_scales(info, var_min=var_min, var_max=var_max)
    return (info[:, :2].softmax(dim=1) * log_b).sum(dim=1, keepdim=True)


def laplace_mixture_nll(
    flow: torch.Tensor, info: torch.Tensor, flow_gt: torch.Tensor, *, var_min: float = 0.0, var_max: float = 10.0
) -> torch.Tensor:
    """Per-pixel, per-flow-component negative log-likelihood ``[B, 2, H, W]`` of ``flow_gt`` under SEA-RAFT's
    mixture of two Laplace distributions centred on ``flow`` (SEA-RAFT Eq. 3)::

        NLL = logsumexp(w) − logsumexp_k(w_k − log 2 − log b_k − |gt − flow| · exp(−log b_k))
    """
    log_b = laplace_log_scales(info, var_min=var_min, var_max=var_max)  # [B, 2(k), H, W]
    weight = info[:, :2]
    term2 = (flow_gt - flow).abs().unsqueeze(2) * torch.exp(-log_b).unsqueeze(1)  # [B, 2(xy), 2(k), H, W]
    term1 = (weight - math.log(2) - log_b).unsqueeze(1)
    return torch.logsumexp(weight, dim=1, keepdim=True) - torch.logsumexp(term1 - term2, dim=2)


# ------------------------------------------------------------------------------------------------ model


@dataclass
class SEARAFTOutput:
    """``flow`` ``[B, 2, H, W]`` and ``info`` ``[B, 4, H, W]`` (final); ``flow_predictions`` / ``info_predictions``:
    **iters + 1** entries (the iteration-0 regression first), all at the input resolution."""

    flow: torch.Tensor
    info: torch.Tensor
    flow_predictions: list[torch.Tensor]
    info_predictions: list[torch.Tensor]


class SEARAFT(nn.Module):
    """SEA-RAFT with the official attribute names. ``forward(image1, image2, iters)`` takes ``[B, 3, H, W]`` in
    0..255 of any size (replicate-padded to multiples of 8 inside, as officially); :meth:`estimate` adds the
    ``scale`` resize protocol. ``compute_dtype``: the encoders', update block's and heads' autocast dtype
    (:mod:`daflow.models.precision`); the correlations, the flow and its upsampling stay float32."""

    def __init__(
        self, config: SEARAFTConfig = SEARAFTConfig(), *, corr_mode: str = "auto", compute_dtype=torch.float32
    ):
        super().__init__()
        self.config, self.corr_mode = config, corr_mode
        self.compute_dtype = compute_dtype  # the networks' autocast dtype (daflow.models.precision)
        dim = config.dim
        self.corr_levels = 4
        cor_planes = self.corr_levels * (2 * config.radius + 1) ** 2
        self.cnet = ResNetFPN(config, input_dim=6, output_dim=2 * dim)
        self.init_conv = nn.Conv2d(2 * dim, 2 * dim, 3, padding=1)
        self.upsample_weight = nn.Sequential(
            nn.Conv2d(dim, 2 * dim, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(2 * dim, 64 * 9, 1)
        )
        self.flow_head = nn.Sequential(
            nn.Conv2d(dim, 2 * dim, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(2 * dim, 6, 3, padding=1)
        )
        self.fnet = ResNetFPN(config, input_dim=3, output_dim=2 * dim)
        self.update_block = UpdateBlock(cor_planes, dim, config.num_blocks)

    @staticmethod
    def _upsample(flow: torch.Tensor, info: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Convex ×8 upsampling of the flow (values ×8) and of ``info`` (values kept) with one mask."""
        up = convex_upsample(torch.cat([8 * flow, info], dim=1), mask, scale_values=False)
        return up[:, :2], up[:, 2:]

    def forward(self, image1: torch.Tensor, image2: torch.Tensor, iters: int | None = None) -> SEARAFTOutput:
        if image1.shape != image2.shape or image1.ndim != 4 or image1.shape[1] != 3:
            raise ValueError(f"images must both be [B, 3, H, W], got {tuple(image1.shape)} and {tuple(image2.shape)}")
        iters = self.config.iters if iters is None else iters
        if iters < 1:
            raise ValueError(f"SEA-RAFT iters must be >= 1, got {iters}")
        padder = InputPadder(image1.shape)
        image1, image2 = padder.pad_images(2 * (image1 / 255.0) - 1, 2 * (image2 / 255.0) - 1)
        h, w = image1.shape[-2:]
        min_side = 8 * 2**self.corr_levels  # the official pyramid halves the 1/8 features 4 times (crashes below)
        if h < min_side or w < min_side:
            raise ValueError(f"SEA-RAFT needs inputs of at least {min_side}x{min_side} (after padding), got {w}x{h}")
        b, dtype = image1.shape[0], image1.dtype  # the flow, its upsampling and the correlations stay in this dtype
        with autocast(image1, self.compute_dtype):
            net, context = torch.split(
                self.init_conv(self.cnet(torch.cat([image1, image2], dim=1))), [self.config.dim] * 2, dim=1
            )
            out = self.flow_head(net).to(dtype)
            mask = self.upsample_weight(net).to(dtype)
            # one fnet call per frame, as officially: in training, BatchNorm statistics are per frame
            fmap1, fmap2 = self.fnet(image1).to(dtype), self.fnet(image2).to(dtype)
        flow8, info8 = out[:, :2], out[:, 2:]
        flows, infos = [], []
        up = self._upsample(flow8, info8, 0.25 * mask)
        flows.append(up[0]), infos.append(up[1])
        corr_fn = build_corr(
            fmap1,
            fmap2,
            mode=self.corr_mode,
            num_levels=self.corr_levels,
            radius=self.config.radius,
            pyramid="features",
        )
        grid = coords_grid(b, h // 8, w // 8, device=image1.device, dtype=dtype)
        for _ in range(iters):
            flow8 = flow8.detach()
            corr = corr_fn(grid + flow8)
            with autocast(image1, self.compute_dtype):
                net = self.update_block(net, context, corr, flow8)
                out = self.flow_head(net).to(dtype)
                mask = self.upsample_weight(net).to(dtype)
            flow8, info8 = flow8 + out[:, :2], out[:, 2:]
            up = self._upsample(flow8, info8, 0.25 * mask)
            flows.append(up[0]), infos.append(up[1])
        flows = [padder.unpad(f) for f in flows]
        infos = [padder.unpad(i) for i in infos]
        return SEARAFTOutput(flow=flows[-1], info=infos[-1], flow_predictions=flows, info_predictions=infos)

    @torch.no_grad()
    def estimate(
        self, image1: torch.Tensor, image2: torch.Tensor, iters: int | None = None, scale: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """SEA-RAFT's evaluation protocol (``calc_flow``): resize the inputs by ``2**scale`` (bilinear), run, and
        bring the flow back (bilinear, values × ``2**-scale``) and ``info`` (area). ``scale=-1`` is the Spring
        half-resolution protocol. Returns ``(flow [B, 2, H, W], info [B, 4, H, W])``."""
        scale = self.config.scale if scale is None else scale
        if scale == 0:
            out = self(image1, image2, iters)
            return out.flow, out.info
        f = 2.0**scale
        img1 = F.interpolate(image1, scale_factor=f, mode="bilinear", align_corners=False)
        img2 = F.interpolate(image2, scale_factor=f, mode="bilinear", align_corners=False)
        out = self(img1, img2, iters)
        flow = F.interpolate(out.flow, scale_factor=1 / f, mode="bilinear", align_corners=False) / f
        info = F.interpolate(out.info, scale_factor=1 / f, mode="area")
        size = image1.shape[-2:]
        if flow.shape[-2:] != size:  # odd input sides: the official code would return a 1-px smaller map
            flow = F.interpolate(flow, size=size, mode="bilinear", align_corners=False)
            info = F.interpolate(info, size=size, mode="nearest")
        return flow, info


def load_sea_raft(
    path_or_state_dict, config: SEARAFTConfig | str = "sea-raft-m", *, corr_mode: str = "auto"
) -> SEARAFT:
    """Build SEA-RAFT for ``config`` (a :class:`SEARAFTConfig` or a preset name) and load weights strictly
    (the official ``.pth``, safetensors, a ptlflow ``{"state_dict": …}`` file, or a state dict)."""
    config = get_sea_raft_config(config) if isinstance(config, str) else config
    sd = read_state_dict(path_or_state_dict, what="SEA-RAFT", published=SEA_RAFT_PUBLISHED)
    model = SEARAFT(config, corr_mode=corr_mode)
    return load_strict(model, sd, what=f"SEA-RAFT ({config.pretrain}, dim {config.dim})")


__all__ = [
    "SEARAFT",
    "SEARAFTConfig",
    "SEARAFTOutput",
    "SEA_RAFT_PRESETS",
    "get_sea_raft_config",
    "load_sea_raft",
    "laplace_mixture_nll",
    "laplace_log_scales",
    "uncertainty",
]
