"""DIS-initialised RAFT ("DIS→RAFT refiner", the bundled default flow model).

A classical estimate is a strong start on degraded video: DIS (Kroeger et al. 2016) is robust to large motion
but noisy on blur, noise and codec blocks; a small RAFT trained on degraded clips is the opposite at our
training budget. The refiner is RAFT-small (Teed & Deng 2020) warm-started from DIS, RAFT's own ``flow_init``
mechanism (the official code's warm start for video):

    f₀ = avgpool₈(DIS(I₁, I₂)) / 8                       (1/8 resolution, in 1/8-pixel units)
    f_{k+1} = f_k + Δf_k(corr(f_k), context)              (RAFT's GRU update, Eq. 18's iterations)
    f = 8 · up₈(f_K)                                      (bilinear, RAFT-small's upsampling)

so every iteration looks up the correlation pyramid around DIS's answer and corrects it. At inference the refiner
runs **coarse to fine** (:func:`refine_pyramid`): first on the frames area-downsampled by 2^(L−1), starting from DIS
downsampled likewise, then on each finer level starting from the coarser answer (bilinear ×2, values ×2), with L
the most levels whose coarsest frame keeps a side of at least 192 px (L = 1 at 256×256, 2 at 384×512, 3 at 1080p).
The finest level encodes nothing: it takes the next coarser level's frame features and context, bilinearly resized to
its grid (:class:`~daflow.models.raft.Encodings`). That scores within 0.6% of its own encoders on every held-out set
and real clip measured, and saves the two costliest encoder passes. Then DIS's own flow is kept where it is
photometrically much better (:func:`keep_dis_where_better`, a margin of 16 grey levels over a 9×9 window) and two
rounds of variational refinement polish the result (:func:`polish`). Each step was chosen by measurement on held-out
clips, real pairs and real footage (BENCHMARKS.md, "The bundled default" and "The default at video speed"). On a
video's pairs in order, each frame is encoded once for the two pairs it belongs to (:class:`FeatureMemo`).

The network weights are a RAFT-small state dict with the convex-upsampling head (``raft.safetensors``); the DIS
settings are fixed (medium preset on the grey frames, :func:`daflow.models.classical.classical_flow`), so a saved
refiner is fully described by its weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from daflow.flow.warp import resize_flow
from daflow.models.raft import RAFT, Encodings, InputPadder, RAFTOutput

# refinement iterations at inference: a frame small enough for one pyramid level keeps the training's 8 (the time is
# small there, and 2 cost 0.4% of EPE at 256x256); a pyramid runs 2 on each coarser level and 1 on the finest, which
# gives the held-out EPE of 8 (within 0.5% on every set, the real pair no worse) in a third of the time: DIS's start
# and the coarse levels leave little to correct (BENCHMARKS.md, "The default at video speed")
SINGLE_LEVEL_ITERS = 8
PYRAMID_ITERS = 2  # each level of a pyramid but the finest
FINEST_ITERS = 1  # the finest level of a pyramid
DEFAULT_ITERS = SINGLE_LEVEL_ITERS  # refine()'s, one level
DEFAULT_FALLBACK_MARGIN = 16.0  # keep DIS where its 9x9 photometric error is lower by 16 grey levels (BENCHMARKS.md)
DEFAULT_POLISH = 2  # variational polish rounds after the network (measured: see BENCHMARKS.md "The bundled default")
MIN_LEVEL_SIDE = 192  # the coarsest pyramid level keeps at least this many pixels on its shorter side


def dis_flows(image1: torch.Tensor, image2: torch.Tensor) -> torch.Tensor:
    """DIS (medium) on each pair of a batch: ``[B, 3, H, W]`` RGB 0..255 → ``[B, 2, H, W]`` float32."""
    from daflow.models.classical import classical_flows

    return classical_flows(image1, image2, "dis")


def dis_init(dis: torch.Tensor) -> torch.Tensor:
    """``[B, 2, H, W]`` full-resolution flow (H, W multiples of 8) → RAFT's ``flow_init`` ``[B, 2, H/8, W/8]``."""
    if dis.shape[-1] % 8 or dis.shape[-2] % 8:
        raise ValueError(f"flow sides must be multiples of 8 (pad first), got {tuple(dis.shape)}")
    return F.avg_pool2d(dis, 8) / 8


#: ``extras(image1, image2)`` of padded frames ``[B, 3, H, W]`` → the hybrid RAFT's extra inputs
#: (``extra_features``, ``extra_context``): DA-Flow's diffusion features of the pair (:meth:`DAFlow.pair_features`)
Extras = Callable[[torch.Tensor, torch.Tensor], dict]


def refine(
    model: RAFT,
    image1: torch.Tensor,
    image2: torch.Tensor,
    dis: torch.Tensor | None = None,
    *,
    iters: int = DEFAULT_ITERS,
    extras: Extras | None = None,
    memo: FeatureMemo | None = None,
    encodings: Encodings | None = None,
) -> RAFTOutput:
    """Run the refiner on frames ``[B, 3, H, W]`` (0..255, any size; padded here and cropped back).

    ``dis`` ``[B, 2, H, W]`` is the initial flow (computed here with DIS when None). The returned flows
    (``flow``, ``flow_predictions``: the final flow alone, RAFT's ``all_predictions=False``) are at the input size;
    ``flow_low`` stays at the padded 1/8 size. ``extras``: the extra inputs of a hybrid RAFT (DA-Flow's), computed
    from the padded frames. ``memo``: a :class:`FeatureMemo` that lends frame 1 its features when it is the frame 2 of
    the previous call (consecutive pairs of a video); without one the frames are encoded as a fresh memo encodes them,
    so that the flows are the same either way. ``encodings``: the encoders' outputs for these frames at another scale
    (a coarser pyramid level's, :func:`refine_pyramid`), resized to this call's grid instead of encoding the frames.
    """
    if dis is None:
        dis = dis_flows(image1, image2)
    padder = InputPadder(image1.shape)
    image1, image2, dis = padder.pad_images(image1, image2, dis)
    more = extras(image1, image2) if extras is not None else {}
    if encodings is not None:
        given = encodings.resized((image1.shape[-2] // 8, image1.shape[-1] // 8))
        more["fmaps"], more["context"] = (given.fmap1, given.fmap2), given.context
    else:
        more["fmaps"] = (memo if memo is not None else FeatureMemo()).features(model, image1, image2)
    out = model(image1, image2, iters=iters, flow_init=dis_init(dis), all_predictions=False, **more)
    preds = [padder.unpad(p) for p in out.flow_predictions]
    return RAFTOutput(flow=preds[-1], flow_low=out.flow_low, flow_predictions=preds, encodings=out.encodings)


class FeatureMemo:
    """The feature maps of the two frames of the last pair the refiner saw, one entry per frame size (pyramid level):
    a frame of the next pair that is one of them (the pairs of a video in order, or a pair and then its backward pair)
    gets its features lent instead of computed again, which saves one feature-encoder pass a pair on each level that
    encodes. Exact: every frame is encoded alone (a batch of one, whose rounding does not depend on any other frame),
    and a lent frame's pixels are compared in full. One pair at a time (batches of one); other batches are encoded as
    RAFT does."""

    def __init__(self) -> None:
        self._last: dict[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]] = {}

    def features(self, model: RAFT, image1: torch.Tensor, image2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(fmap1, fmap2)`` of padded frames ``[B, 3, H, W]``; with B = 1 both frames' are kept for the next call."""
        if image1.shape[0] != 1:
            return model.features(torch.cat([image1, image2])).split(image1.shape[0])
        key = tuple(image1.shape)
        kept = self._last.get(key, [])

        def encode(image: torch.Tensor) -> torch.Tensor:  # alone, lent or not: a batch's rounding follows its size
            lent = next((f for frame, f in kept if torch.equal(frame, image)), None)
            return lent if lent is not None else model.features(image)

        fmap1, fmap2 = encode(image1), encode(image2)
        self._last[key] = [(image1.clone(), fmap1), (image2.clone(), fmap2)]  # copies: callers may reuse the memory
        return fmap1, fmap2


def pyramid_levels(size: tuple[int, int], min_side: int = MIN_LEVEL_SIDE, max_levels: int = 4) -> int:
    """How many levels :func:`refine_pyramid` uses for frames of ``size`` (H, W): the most whose coarsest frame keeps
    ``min(H, W) / 2^(L−1) >= min_side``, between 1 and ``max_levels``."""
    levels = 1
    while levels < max_levels and min(size) / 2**levels >= min_side:
        levels += 1
    return levels


def polish(image1: torch.Tensor, image2: torch.Tensor, flow: torch.Tensor, *, rounds: int = 2) -> torch.Tensor:
    """``rounds`` passes of OpenCV's variational refinement (a Brox-style data + smoothness energy, DIS's last stage;
    its defaults α = 20, δ = 5, γ = 10, 5 fixed-point iterations) on the grey frames, starting from ``flow``
    ``[B, 2, H, W]``: it restores pixel-level detail that the network's 1/8-resolution answer lacks."""
    import cv2

    out = []
    for a, b, f in zip(image1, image2, flow):
        grey = [
            cv2.cvtColor(x.permute(1, 2, 0).round().clamp(0, 255).byte().cpu().numpy(), cv2.COLOR_RGB2GRAY)
            for x in (a, b)
        ]
        field = np.ascontiguousarray(f.permute(1, 2, 0).detach().cpu().numpy().astype(np.float32))
        for _ in range(rounds):
            cv2.VariationalRefinement_create().calc(grey[0], grey[1], field)
        out.append(torch.from_numpy(field).permute(2, 0, 1))
    return torch.stack(out).to(flow.device, flow.dtype)


def keep_dis_where_better(
    image1: torch.Tensor,
    image2: torch.Tensor,
    refined: torch.Tensor,
    dis: torch.Tensor,
    *,
    margin: float,
    ratio: float = 1.0,
    window: int = 9,
) -> torch.Tensor:
    """Per pixel, DIS's flow where its photometric error on the input frames (mean absolute difference between
    frame 1 and frame 2 warped back, averaged over the channels and a ``window``² neighbourhood, 0..255) is below
    the refined flow's by more than ``margin`` and below ``ratio`` times it; the refined flow elsewhere.
    Flows ``[B, 2, H, W]``."""
    from daflow.flow.warp import backward_warp

    def error(flow: torch.Tensor) -> torch.Tensor:
        e = (image1 - backward_warp(image2, flow, padding_mode="border")).abs().mean(1, keepdim=True)
        return box_mean(e, window)

    e_dis, e_ref = error(dis), error(refined)
    return torch.where((e_dis < e_ref - margin) & (e_dis < ratio * e_ref), dis, refined)


def box_mean(x: torch.Tensor, window: int) -> torch.Tensor:
    """The mean over each ``window``² neighbourhood inside the frame (``avg_pool2d`` with stride 1, ``window // 2``
    padding and ``count_include_pad=False``) of ``x`` ``[B, 1, H, W]``, by OpenCV's running-sum box filter: the same
    values to float rounding, 30-50× faster on a CPU than the pooling's ``window²`` sums a pixel."""
    import cv2

    h, w = x.shape[-2:]
    ones = np.ones((h, w), np.float32)
    count = cv2.boxFilter(ones, -1, (window, window), normalize=False, borderType=cv2.BORDER_CONSTANT)
    frames = x.detach().to("cpu", torch.float32).numpy()
    sums = [cv2.boxFilter(f[0], -1, (window, window), normalize=False, borderType=cv2.BORDER_CONSTANT) for f in frames]
    return torch.from_numpy(np.stack(sums)[:, None] / count).to(x.device, x.dtype)


@dataclass(frozen=True)
class Fallback:
    """When :func:`keep_dis_where_better` keeps DIS (see there)."""

    margin: float
    ratio: float = 1.0
    window: int = 9


DEFAULT_FALLBACK = Fallback(DEFAULT_FALLBACK_MARGIN)


def refine_pyramid(
    model: RAFT,
    image1: torch.Tensor,
    image2: torch.Tensor,
    dis: torch.Tensor | None = None,
    *,
    iters: int | None = None,
    levels: int | None = None,
    polish_rounds: int = 0,
    fallback: Fallback | None = None,
    extras: Extras | None = None,
    memo: FeatureMemo | None = None,
) -> torch.Tensor:
    """Coarse-to-fine refinement (module docstring): frames ``[B, 3, H, W]`` (0..255) → flow ``[B, 2, H, W]``.
    ``levels``: default :func:`pyramid_levels` of the frame size; ``iters`` a level: default
    :data:`SINGLE_LEVEL_ITERS` for one level, on a pyramid :data:`PYRAMID_ITERS` on each coarser level and
    :data:`FINEST_ITERS` on the finest, which reuses the next coarser level's encodings (module docstring) when that
    level ran; ``fallback``:
    :func:`keep_dis_where_better` before ``polish_rounds`` of :func:`polish`; ``extras``: see :func:`refine` (called
    on every level's frames); ``memo``: see :func:`refine`."""
    if dis is None:
        dis = dis_flows(image1, image2)
    size = tuple(image1.shape[-2:])
    levels = pyramid_levels(size) if levels is None else levels
    if levels < 1:
        raise ValueError(f"levels must be >= 1, got {levels}")
    flow, coarser = dis, None
    for level in reversed(range(levels)):
        n = iters
        if n is None:
            n = SINGLE_LEVEL_ITERS if levels == 1 else (PYRAMID_ITERS if level else FINEST_ITERS)
        if level:
            a, b = (F.interpolate(x, scale_factor=1 / 2**level, mode="area") for x in (image1, image2))
            init = resize_flow(flow, tuple(a.shape[-2:]), "area")
        else:
            a, b = image1, image2
            init = flow if tuple(flow.shape[-2:]) == size else resize_flow(flow, size, "bilinear")
        if not n:
            flow, coarser = init, None
            continue
        out = refine(model, a, b, init, iters=n, extras=extras, memo=memo, encodings=None if level else coarser)
        flow, coarser = out.flow, out.encodings
    if fallback is not None:
        flow = keep_dis_where_better(
            image1, image2, flow, dis, margin=fallback.margin, ratio=fallback.ratio, window=fallback.window
        )
    return polish(image1, image2, flow, rounds=polish_rounds) if polish_rounds else flow
