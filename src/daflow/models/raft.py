"""RAFT (Teed & Deng, ECCV 2020) with the official module names, and its hybrid extension for DA-Flow.

Attribute names equal the official ``princeton-vl/RAFT`` so that ``raft-things.pth`` loads by name after
stripping ``module.`` (``docs/models.md``). The residual blocks register their stride-2
normalisation twice (``norm3`` and ``downsample.1``), as the official code does, so the official file loads
strictly with its 179 entries.

DA-Flow (paper §4.4, Eq. 13–17) appends diffusion features to RAFT's: ``extra_feature_dim`` channels to the
feature-encoder output of both frames before the correlation (Eq. 15) and ``extra_context_dim`` channels to the
context after RAFT's ReLU (Eq. 16), which widens the input of the six GRU convolutions from 384 to
384 + c′ channels laid out as ``[h (128), inp (128), extra context (c′), motion (128)]``. See
:func:`hybrid_state_dict_from_raft` for the zero-initialisation that makes the hybrid model equal RAFT.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from daflow.flow.warp import coords_grid
from daflow.models.corr import build_corr, default_norm
from daflow.models.precision import autocast


class InstanceNorm(nn.Module):
    """Instance normalisation without affine parameters or running statistics (``nn.InstanceNorm2d``'s defaults, what
    RAFT's feature encoder uses), computed as group normalisation with one group a channel: the same function (equal
    to float rounding, ~1e-6) and no state, but 3-4× faster on a CPU, where ``instance_norm`` goes through a reshaped
    batch normalisation (BENCHMARKS.md, "The default at video speed")."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.channels, self.eps = channels, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.group_norm(x, self.channels, eps=self.eps)


def _norm(norm_fn: str, channels: int, groups: int = 8) -> nn.Module:
    if norm_fn == "instance":
        return InstanceNorm(channels)
    if norm_fn == "batch":
        return nn.BatchNorm2d(channels)
    if norm_fn == "group":
        return nn.GroupNorm(groups, channels)
    if norm_fn == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm_fn {norm_fn!r}")


class ResidualBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, norm_fn: str, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, padding=1, stride=stride)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.norm1, self.norm2 = _norm(norm_fn, planes, planes // 8), _norm(norm_fn, planes, planes // 8)
        self.downsample = None
        if stride != 1:
            self.norm3 = _norm(norm_fn, planes, planes // 8)
            self.downsample = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride), self.norm3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.norm1(self.conv1(x)))
        y = self.relu(self.norm2(self.conv2(y)))
        if self.downsample is not None:
            x = self.downsample(x)
        return self.relu(x + y)


class BottleneckBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, norm_fn: str, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes // 4, 1)
        self.conv2 = nn.Conv2d(planes // 4, planes // 4, 3, padding=1, stride=stride)
        self.conv3 = nn.Conv2d(planes // 4, planes, 1)
        self.relu = nn.ReLU(inplace=True)
        self.norm1 = _norm(norm_fn, planes // 4, planes // 8)
        self.norm2 = _norm(norm_fn, planes // 4, planes // 8)
        self.norm3 = _norm(norm_fn, planes, planes // 8)
        self.downsample = None
        if stride != 1:
            self.norm4 = _norm(norm_fn, planes, planes // 8)
            self.downsample = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride), self.norm4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.norm1(self.conv1(x)))
        y = self.relu(self.norm2(self.conv2(y)))
        y = self.relu(self.norm3(self.conv3(y)))
        if self.downsample is not None:
            x = self.downsample(x)
        return self.relu(x + y)


class BasicEncoder(nn.Module):
    """Feature / context encoder: 1/8 resolution, ``output_dim`` channels. ``widths`` = stem, layer1..3."""

    def __init__(
        self, output_dim: int, norm_fn: str, *, block: type[nn.Module] = ResidualBlock, widths=(64, 64, 96, 128)
    ):
        super().__init__()
        stem, w1, w2, w3 = widths
        self.norm1 = _norm(norm_fn, stem, 8)
        self.conv1 = nn.Conv2d(3, stem, 7, stride=2, padding=3)
        self.relu1 = nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(block(stem, w1, norm_fn, 1), block(w1, w1, norm_fn, 1))
        self.layer2 = nn.Sequential(block(w1, w2, norm_fn, 2), block(w2, w2, norm_fn, 1))
        self.layer3 = nn.Sequential(block(w2, w3, norm_fn, 2), block(w3, w3, norm_fn, 1))
        self.conv2 = nn.Conv2d(w3, output_dim, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.norm1(self.conv1(x)))
        return self.conv2(self.layer3(self.layer2(self.layer1(x))))


class FlowHead(nn.Module):
    def __init__(self, input_dim: int = 128, hidden_dim: int = 256):
        super().__init__()
        self.conv1 = nn.Conv2d(input_dim, hidden_dim, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden_dim, 2, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.relu(self.conv1(x)))


def split_conv(conv: nn.Conv2d, x: torch.Tensor, extra: tuple[int, int] | None) -> torch.Tensor:
    """``conv(x)`` with the input channels ``extra = (start, count)`` (DA-Flow's diffusion context) convolved apart and
    added: the same function, but with those weights zero the result is RAFT's to the last bit (the main part is the
    very convolution RAFT computes)."""
    if extra is None:
        return conv(x)
    a, n = extra
    w = conv.weight
    main = F.conv2d(
        torch.cat([x[:, :a], x[:, a + n :]], 1),
        torch.cat([w[:, :a], w[:, a + n :]], 1),
        conv.bias,
        padding=conv.padding,
    )
    return main + F.conv2d(x[:, a : a + n], w[:, a : a + n], None, padding=conv.padding)


class SepConvGRU(nn.Module):
    """Separable (1×5 then 5×1) convolutional GRU of RAFT-large. ``extra``: see :func:`split_conv`."""

    def __init__(self, hidden_dim: int = 128, input_dim: int = 256):
        super().__init__()
        cin = hidden_dim + input_dim
        self.extra: tuple[int, int] | None = None
        for g in "zrq":
            setattr(self, f"conv{g}1", nn.Conv2d(cin, hidden_dim, (1, 5), padding=(0, 2)))
            setattr(self, f"conv{g}2", nn.Conv2d(cin, hidden_dim, (5, 1), padding=(2, 0)))

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        for k in "12":
            hx = torch.cat([h, x], dim=1)
            z = torch.sigmoid(split_conv(getattr(self, f"convz{k}"), hx, self.extra))
            r = torch.sigmoid(split_conv(getattr(self, f"convr{k}"), hx, self.extra))
            q = torch.tanh(split_conv(getattr(self, f"convq{k}"), torch.cat([r * h, x], dim=1), self.extra))
            h = (1 - z) * h + z * q
        return h


class ConvGRU(nn.Module):
    """3×3 convolutional GRU of RAFT-small. ``extra``: see :func:`split_conv`."""

    def __init__(self, hidden_dim: int = 96, input_dim: int = 146):
        super().__init__()
        cin = hidden_dim + input_dim
        self.extra: tuple[int, int] | None = None
        self.convz, self.convr, self.convq = (nn.Conv2d(cin, hidden_dim, 3, padding=1) for _ in range(3))

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        hx = torch.cat([h, x], dim=1)
        z, r = (
            torch.sigmoid(split_conv(self.convz, hx, self.extra)),
            torch.sigmoid(split_conv(self.convr, hx, self.extra)),
        )
        q = torch.tanh(split_conv(self.convq, torch.cat([r * h, x], dim=1), self.extra))
        return (1 - z) * h + z * q


class BasicMotionEncoder(nn.Module):
    """Correlation + flow → ``dim`` motion features (the last 2 are the flow itself). RAFT-large uses dim=128;
    SEA-RAFT parametrises it by its hidden size, with the same names and, at 128, the same shapes."""

    def __init__(self, cor_planes: int, dim: int = 128):
        super().__init__()
        self.convc1 = nn.Conv2d(cor_planes, 2 * dim, 1)
        self.convc2 = nn.Conv2d(2 * dim, dim + dim // 2, 3, padding=1)
        self.convf1 = nn.Conv2d(2, dim, 7, padding=3)
        self.convf2 = nn.Conv2d(dim, dim // 2, 3, padding=1)
        self.conv = nn.Conv2d(2 * dim, dim - 2, 3, padding=1)

    def forward(self, flow: torch.Tensor, corr: torch.Tensor) -> torch.Tensor:
        cor = F.relu(self.convc2(F.relu(self.convc1(corr))))
        flo = F.relu(self.convf2(F.relu(self.convf1(flow))))
        return torch.cat([F.relu(self.conv(torch.cat([cor, flo], dim=1))), flow], dim=1)


class SmallMotionEncoder(nn.Module):
    def __init__(self, cor_planes: int):
        super().__init__()
        self.convc1 = nn.Conv2d(cor_planes, 96, 1)
        self.convf1 = nn.Conv2d(2, 64, 7, padding=3)
        self.convf2 = nn.Conv2d(64, 32, 3, padding=1)
        self.conv = nn.Conv2d(128, 80, 3, padding=1)

    def forward(self, flow: torch.Tensor, corr: torch.Tensor) -> torch.Tensor:
        cor = F.relu(self.convc1(corr))
        flo = F.relu(self.convf2(F.relu(self.convf1(flow))))
        return torch.cat([F.relu(self.conv(torch.cat([cor, flo], dim=1))), flow], dim=1)


class BasicUpdateBlock(nn.Module):
    """Motion encoder → SepConvGRU → flow head and convex-upsampling mask (×0.25 as officially)."""

    def __init__(self, cor_planes: int, hidden_dim: int = 128, context_dim: int = 128):
        super().__init__()
        self.encoder = BasicMotionEncoder(cor_planes)
        self.gru = SepConvGRU(hidden_dim, input_dim=context_dim + 128)
        self.flow_head = FlowHead(hidden_dim, 256)
        self.mask = nn.Sequential(
            nn.Conv2d(hidden_dim, 256, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(256, 64 * 9, 1)
        )

    def forward(self, net, inp, corr, flow, *, mask: bool = True):
        """``(net, 0.25·mask or None when not ``mask``, Δflow)``."""
        net = self.gru(net, torch.cat([inp, self.encoder(flow, corr)], dim=1))
        return net, 0.25 * self.mask(net) if mask else None, self.flow_head(net)


class SmallUpdateBlock(nn.Module):
    """RAFT-small's update. ``convex=True`` adds RAFT-large's convex-upsampling mask head (not in the official
    RAFT-small; the DIS→RAFT refiner of :mod:`daflow.models.refine` uses it to keep motion boundaries sharp)."""

    def __init__(self, cor_planes: int, hidden_dim: int = 96, context_dim: int = 64, convex: bool = False):
        super().__init__()
        self.encoder = SmallMotionEncoder(cor_planes)
        self.gru = ConvGRU(hidden_dim, input_dim=82 + context_dim)
        self.flow_head = FlowHead(hidden_dim, 128)
        if convex:
            self.mask = nn.Sequential(
                nn.Conv2d(hidden_dim, 256, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(256, 64 * 9, 1)
            )

    def forward(self, net, inp, corr, flow, *, mask: bool = True):
        """``(net, 0.25·mask or None without the convex head or when not ``mask``, Δflow)``."""
        net = self.gru(net, torch.cat([inp, self.encoder(flow, corr)], dim=1))
        mask = 0.25 * self.mask(net) if mask and hasattr(self, "mask") else None
        return net, mask, self.flow_head(net)


def convex_upsample(
    flow: torch.Tensor, mask: torch.Tensor, factor: int = 8, *, scale_values: bool = True
) -> torch.Tensor:
    """Convex upsampling (RAFT §3.3): each fine pixel is a softmax-weighted mix of its 3×3 coarse neighbours.

    ``flow`` ``[B, C, H, W]`` (C = 2 for a flow; SEA-RAFT also upsamples its ``info`` with the same mask),
    ``mask`` ``[B, 9·f², H, W]`` → ``[B, C, f·H, f·W]``, values scaled by f unless ``scale_values=False``.
    """
    b, c, h, w = flow.shape
    mask = torch.softmax(mask.view(b, 1, 9, factor, factor, h, w), dim=2)
    up = F.unfold(factor * flow if scale_values else flow, 3, padding=1).view(b, c, 9, 1, 1, h, w)
    up = (mask * up).sum(dim=2)  # [B, C, f, f, H, W]
    return up.permute(0, 1, 4, 2, 5, 3).reshape(b, c, factor * h, factor * w)


def upflow(flow: torch.Tensor, factor: int = 8) -> torch.Tensor:
    """Bilinear ×factor upsampling of a flow (RAFT-small), values scaled by factor."""
    h, w = flow.shape[-2:]
    return factor * F.interpolate(flow, size=(factor * h, factor * w), mode="bilinear", align_corners=True)


@dataclass(frozen=True)
class Encodings:
    """What RAFT's two encoders give for a pair: both frames' features ``fmap1``, ``fmap2`` ``[B, feature_dim, h, w]``
    (before any extra features are appended) and the context encoder's output ``context`` ``[B, hidden_dim +
    context_dim, h, w]`` (before its tanh and ReLU), on the 1/8 grid of the frames."""

    fmap1: torch.Tensor
    fmap2: torch.Tensor
    context: torch.Tensor

    def resized(self, size: tuple[int, int]) -> Encodings:
        """The same maps bilinearly resized to the 1/8 grid ``size`` = (h, w) of the same frames at another scale
        (a finer pyramid level's: :func:`daflow.models.refine.refine_pyramid`)."""

        def resize(x: torch.Tensor) -> torch.Tensor:
            if tuple(x.shape[-2:]) == tuple(size):
                return x
            return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)

        return Encodings(resize(self.fmap1), resize(self.fmap2), resize(self.context))


@dataclass
class RAFTOutput:
    """``flow`` ``[B, 2, H, W]`` (final, full resolution), ``flow_low`` ``[B, 2, H/8, W/8]``,
    ``flow_predictions``: every iteration's full-resolution flow (for the sequence loss, Eq. 18), and
    ``encodings``: the :class:`Encodings` the call computed or was given."""

    flow: torch.Tensor
    flow_low: torch.Tensor
    flow_predictions: list[torch.Tensor]
    encodings: Encodings | None = None


class RAFT(nn.Module):
    """RAFT-large (``small=False``) or RAFT-small, optionally hybrid (DA-Flow).

    Args:
        small: RAFT-small (bottleneck encoders, 3×3 GRU, radius 3, bilinear upsampling).
        extra_feature_dim: channels of extra per-frame features appended to the feature-encoder output.
        extra_context_dim: channels of extra context appended to ``inp`` after RAFT's ReLU.
        corr_scale: ``"raft"`` divides correlations by sqrt(C_raft) (default; what keeps hybrid = RAFT at
            initialisation) or ``"hybrid"`` by sqrt(C_raft + extra_feature_dim).
        corr_mode: ``"auto"``, ``"all-pairs"``, ``"windowed"`` or ``"lean"`` (:mod:`daflow.models.corr`).
        compute_dtype: the encoders' and the update block's autocast dtype (:mod:`daflow.models.precision`; set it
            with :func:`~daflow.models.precision.set_compute_dtype`, which also picks the weights' memory format):
            float32 (default), or bfloat16 / float16 with the correlations, the flow and the convex upsampling kept
            float32, as official RAFT's ``--mixed_precision`` (float16 on CUDA).
        convex: RAFT-small with RAFT-large's convex upsampling instead of bilinear (see :class:`SmallUpdateBlock`).
    """

    def __init__(
        self,
        *,
        small: bool = False,
        extra_feature_dim: int = 0,
        extra_context_dim: int = 0,
        corr_scale: str = "raft",
        corr_mode: str = "auto",
        compute_dtype: torch.dtype = torch.float32,
        convex: bool = False,
    ):
        super().__init__()
        self.compute_dtype = compute_dtype
        if corr_scale not in ("raft", "hybrid"):
            raise ValueError(f"corr_scale must be 'raft' or 'hybrid', got {corr_scale!r}")
        self.small = small
        self.extra_feature_dim, self.extra_context_dim = extra_feature_dim, extra_context_dim
        self.corr_scale, self.corr_mode = corr_scale, corr_mode
        self.hidden_dim, self.context_dim = (96, 64) if small else (128, 128)
        self.corr_levels, self.corr_radius = 4, (3 if small else 4)
        self.feature_dim = 128 if small else 256
        cor_planes = self.corr_levels * (2 * self.corr_radius + 1) ** 2
        if small:
            widths = (32, 32, 64, 96)
            self.fnet = BasicEncoder(self.feature_dim, "instance", block=BottleneckBlock, widths=widths)
            self.cnet = BasicEncoder(self.hidden_dim + self.context_dim, "none", block=BottleneckBlock, widths=widths)
            self.update_block = SmallUpdateBlock(
                cor_planes, self.hidden_dim, self.context_dim + extra_context_dim, convex=convex
            )
        else:
            self.fnet = BasicEncoder(self.feature_dim, "instance")
            self.cnet = BasicEncoder(self.hidden_dim + self.context_dim, "batch")
            self.update_block = BasicUpdateBlock(cor_planes, self.hidden_dim, self.context_dim + extra_context_dim)
        if extra_context_dim:  # GRU input [h, inp, extra context, motion]: the extra channels convolved apart
            self.update_block.gru.extra = (self.hidden_dim + self.context_dim, extra_context_dim)

    def freeze_bn(self) -> None:
        """Context-encoder BatchNorm in eval mode (official RAFT after the Chairs stage)."""
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()

    def forward(
        self,
        image1: torch.Tensor,
        image2: torch.Tensor,
        iters: int = 12,
        flow_init: torch.Tensor | None = None,
        *,
        extra_features: tuple[torch.Tensor, torch.Tensor] | None = None,
        extra_context: torch.Tensor | None = None,
        all_predictions: bool = True,
        fmaps: tuple[torch.Tensor, torch.Tensor] | None = None,
        context: torch.Tensor | None = None,
    ) -> RAFTOutput:
        """Images ``[B, 3, H, W]`` in 0..255 with H, W multiples of 8 (see :class:`InputPadder`).

        ``flow_init`` ``[B, 2, H/8, W/8]`` warm-starts; ``extra_features`` = (f1, f2) each
        ``[B, extra_feature_dim, H/8, W/8]``; ``extra_context`` ``[B, extra_context_dim, H/8, W/8]``.
        ``all_predictions=False`` (inference: official RAFT's ``test_mode``) upsamples only the last iteration's flow,
        so the upsampling-mask head runs once instead of every iteration; ``flow_predictions`` then holds the final
        flow alone, which is the same as with ``True``. ``fmaps``: the two frames' :meth:`features` when already
        computed (consecutive pairs of a video share a frame); ``context``: frame 1's :meth:`context` when already
        computed. Both on the frames' 1/8 grid; the call's ``encodings`` hold them.
        """
        self._check_images(image1, image2)
        b, h8, w8 = image1.shape[0], image1.shape[-2] // 8, image1.shape[-1] // 8
        fmap1, fmap2 = fmaps if fmaps is not None else self.features(torch.cat([image1, image2], dim=0)).split(b)
        context = self.context(image1) if context is None else context
        for name, x, channels in (("fmaps", fmap1, self.feature_dim), ("context", context, self.cnet_dim)):
            if tuple(x.shape) != (b, channels, h8, w8):
                raise ValueError(f"{name} must be {(b, channels, h8, w8)} for these frames, got {tuple(x.shape)}")
        encodings = Encodings(fmap1, fmap2, context)
        dtype = torch.result_type(image1, 255.0)  # the encoders' input dtype (0..255 / 255.0): the flow's too
        if self.extra_feature_dim:
            if extra_features is None:
                raise ValueError(f"this hybrid RAFT needs extra_features=(f1, f2) of {self.extra_feature_dim} channels")
            f1, f2 = extra_features
            for name, f in (("f1", f1), ("f2", f2)):
                if tuple(f.shape) != (b, self.extra_feature_dim, h8, w8):
                    raise ValueError(
                        f"extra feature {name} must be {(b, self.extra_feature_dim, h8, w8)}, got {tuple(f.shape)}"
                    )
            # Eq. 15's channel concatenation, kept as two parts whose correlations are added (same function; zero
            # diffusion features then leave RAFT's correlations bit-identical)
            fmap1, fmap2 = (fmap1, f1.to(fmap1.dtype)), (fmap2, f2.to(fmap2.dtype))
        elif extra_features is not None:
            raise ValueError("extra_features given to a RAFT built with extra_feature_dim=0")
        norm = default_norm(self.feature_dim + (self.extra_feature_dim if self.corr_scale == "hybrid" else 0))
        corr_fn = build_corr(
            fmap1, fmap2, mode=self.corr_mode, num_levels=self.corr_levels, radius=self.corr_radius, norm=norm
        )
        with self._autocast(image1):
            net, inp = torch.split(context, [self.hidden_dim, self.context_dim], dim=1)
            net, inp = torch.tanh(net), torch.relu(inp)
        if self.extra_context_dim:
            if extra_context is None or tuple(extra_context.shape) != (b, self.extra_context_dim, h8, w8):
                got = None if extra_context is None else tuple(extra_context.shape)
                raise ValueError(f"extra_context must be {(b, self.extra_context_dim, h8, w8)}, got {got}")
            inp = torch.cat([inp, extra_context.to(inp.dtype)], dim=1)
        elif extra_context is not None:
            raise ValueError("extra_context given to a RAFT built with extra_context_dim=0")
        coords0 = coords_grid(b, h8, w8, device=image1.device, dtype=dtype)
        coords1 = coords0.clone()
        if flow_init is not None:
            coords1 = coords1 + flow_init
        predictions = []
        for k in range(iters):
            upsample = all_predictions or k == iters - 1
            coords1 = coords1.detach()
            corr = corr_fn(coords1)
            flow = coords1 - coords0
            with self._autocast(image1):
                net, mask, delta = self.update_block(net, inp, corr, flow, mask=upsample)
            coords1 = coords1 + delta.to(coords1.dtype)
            if upsample:
                mask = None if mask is None else mask.to(coords1.dtype)
                flow_low = coords1 - coords0
                predictions.append(upflow(flow_low) if mask is None else convex_upsample(flow_low, mask))
        return RAFTOutput(
            flow=predictions[-1], flow_low=coords1 - coords0, flow_predictions=predictions, encodings=encodings
        )

    @property
    def cnet_dim(self) -> int:
        """Channels of the context encoder's output: the GRU's initial hidden state and its context input."""
        return self.hidden_dim + self.context_dim

    def context(self, images: torch.Tensor) -> torch.Tensor:
        """The context encoder on frames 1 ``[B, 3, H, W]`` (0..255) → ``[B, hidden_dim + context_dim, H/8, W/8]``,
        before the tanh (the GRU's initial hidden state) and the ReLU (its context input) of :meth:`forward`."""
        x = 2 * (images / 255.0) - 1
        with self._autocast(x):
            return self.cnet(x)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The feature encoder (Eq. 15's RAFT part) on frames ``[N, 3, H, W]`` (0..255) → ``[N, feature_dim, H/8,
        W/8]``; each frame's features depend on that frame alone."""
        x = 2 * (images / 255.0) - 1
        with self._autocast(x):
            return self.fnet(x).to(x.dtype)

    def _check_images(self, image1: torch.Tensor, image2: torch.Tensor) -> None:
        """One clear error for images RAFT cannot take: other shapes, sides not multiples of 8, or too small for the
        correlation pyramid."""
        if image1.shape != image2.shape or image1.ndim != 4 or image1.shape[1] != 3:
            raise ValueError(f"images must both be [B, 3, H, W], got {tuple(image1.shape)} and {tuple(image2.shape)}")
        h, w = image1.shape[-2:]
        if h % 8 or w % 8:
            raise ValueError(
                f"image sides must be multiples of 8, got {w}x{h}; pad with daflow.models.raft.InputPadder"
            )
        min_side = 8 * 2 ** (self.corr_levels - 1)
        if h < min_side or w < min_side:
            raise ValueError(
                f"images must be at least {min_side}x{min_side} (a {self.corr_levels}-level correlation pyramid at "
                f"1/8), got {w}x{h}"
            )

    def _autocast(self, ref: torch.Tensor):
        return autocast(ref, self.compute_dtype)


class InputPadder:
    """Pads images to multiples of ``multiple`` (replicate; centred for ``mode="sintel"``, bottom/right for
    ``"kitti"``, as official RAFT) and crops flows back."""

    def __init__(self, shape, *, multiple: int = 8, mode: str = "sintel"):
        h, w = shape[-2:]
        ph, pw = (-h) % multiple, (-w) % multiple
        if mode == "sintel":
            self.pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
        elif mode == "kitti":
            self.pad = (0, pw, 0, ph)
        else:
            raise ValueError(f"padder mode must be 'sintel' or 'kitti', got {mode!r}")

    def pad_images(self, *images: torch.Tensor) -> list[torch.Tensor]:
        return [F.pad(x, self.pad, mode="replicate") for x in images]

    def unpad(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        left, right, top, bottom = self.pad
        return x[..., top : h - bottom, left : w - right]
