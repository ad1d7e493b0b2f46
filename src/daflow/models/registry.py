"""Flow models by name, behind one calling convention (what ``daflow evaluate`` and ``daflow pseudo-gt`` use).

Every estimator maps two frames ``[B, 3, H, W]`` (RGB, 0..255, any size) to the forward flow ``[B, 2, H, W]``;
padding, resizing protocols and iteration counts are handled here. Published weights are never downloaded:
each network model needs ``weights`` (the published file) unless ``random_init=True`` is asked for explicitly,
which is for smoke tests and says so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch

from daflow.models.catalog import MODELS, entry
from daflow.models.precision import dtype_name, flow_dtype, set_compute_dtype
from daflow.models.raft import RAFT, InputPadder
from daflow.models.raft_weights import load_raft
from daflow.models.sea_raft import SEARAFT, get_sea_raft_config, load_sea_raft

log = logging.getLogger(__name__)


class MissingWeightsError(FileNotFoundError):
    """A network model was asked for without its weights."""


@dataclass
class FlowEstimator:
    """``estimator(image1, image2) -> flow``: ``[B, 3, H, W]`` RGB 0..255 → ``[B, 2, H, W]`` (no gradients)."""

    name: str
    description: str
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    device: torch.device
    random_init: bool = False
    module: torch.nn.Module | None = None

    @torch.no_grad()
    def __call__(self, image1: torch.Tensor, image2: torch.Tensor) -> torch.Tensor:
        return self.fn(image1.to(self.device, torch.float32), image2.to(self.device, torch.float32))


def _raft_fn(model: RAFT, iters: int):
    def run(a, b):
        padder = InputPadder(a.shape)
        a, b = padder.pad_images(a, b)
        return padder.unpad(model(a, b, iters=iters, all_predictions=False).flow)

    return run


def _classical_fn(method: str):
    from daflow.models.classical import classical_flows

    return lambda a, b: classical_flows(a, b, method)


def check_weights(name: str, weights, random_init: bool) -> None:
    """The one policy for weights, whatever the caller: a name that needs published weights gets them (or an explicit
    ``random_init``, for smoke tests); a bundled model takes no random weights; a model without weights takes none."""
    e = entry(name)
    if weights is not None and random_init:
        raise ValueError("give either weights or random_init, not both")
    if e.bundled and random_init:
        raise ValueError(f"{name} is a bundled, trained model: random weights do not apply to it")
    if not e.takes_weights and (weights is not None or random_init):
        raise ValueError(f"{name} is a classical method: it takes no weights")
    if e.bundled and weights is not None and e.family != "refiner":
        published = next(n for n, o in MODELS.items() if o.family == e.family and o.needs_weights)
        raise ValueError(f"{name} is a bundled model; for other weights use --model {published} --weights PATH")
    if e.needs_weights and weights is None and not random_init:
        raise MissingWeightsError(
            f"{name} needs its weights (--weights PATH): {e.published}. "
            "For a smoke test with random weights pass --random-init instead."
        )


def build_flow_model(
    name: str,
    weights=None,
    *,
    iters: int | None = None,
    scale: int | None = None,
    device: str | torch.device = "cpu",
    corr_mode: str = "auto",
    random_init: bool = False,
    seed: int = 0,
    refiner: dict | None = None,
    dtype: str | torch.dtype | None = None,
) -> FlowEstimator:
    """Build the pairwise model ``name`` (a name of :data:`~daflow.models.catalog.MODELS` outside the ``daflow``
    family; :func:`daflow.load_model` is the public way in).

    Args:
        weights: the published checkpoint (path or state dict); required for network models unless
            ``random_init`` (:func:`check_weights`).
        iters: refinement iterations (default: the table's; SEA-RAFT: its preset's, 4 for S/M and 12 for L).
        scale: SEA-RAFT's resize exponent (``-1`` = half resolution, its Spring protocol); default: the preset's.
        random_init: seeded random weights, for smoke tests only (logged as a warning).
        refiner: the DIS→RAFT refiner's ``levels`` / ``polish_rounds`` / ``fallback`` (:func:`dis_raft_estimator`).
        dtype: a network's compute dtype (:func:`daflow.models.precision.flow_dtype`: ``None``/``"auto"`` is
            float32); a classical method has none and ignores it.
    """
    e = entry(name)
    if refiner and e.family != "refiner":
        raise ValueError(f"refiner options apply to the DIS->RAFT refiner, not to {name}")
    if e.family == "daflow":
        raise ValueError(f"{name} is DA-Flow, not a pairwise model: load it with daflow.load_model")
    check_weights(name, weights, random_init)
    device = torch.device(device)
    if e.family == "classical":
        return FlowEstimator(name, e.description, _classical_fn(name), torch.device("cpu"))
    dtype = flow_dtype(dtype)
    if e.family == "refiner":
        return dis_raft_estimator(
            weights, iters=iters, device=device, corr_mode=corr_mode, dtype=dtype, **(refiner or {})
        )
    description = e.description
    if random_init:
        log.warning("%s: RANDOM weights (--random-init): the flow is meaningless, for smoke tests only", name)
        description += " [random weights]"
    if e.bundled:
        from daflow.models.bundled import bundled_path

        weights = bundled_path(e.bundled) / "raft.safetensors"
    with torch.random.fork_rng(devices=[]):  # seeded random weights without touching the caller's generator
        torch.manual_seed(seed)
        return _build_network(
            name,
            weights,
            description,
            iters=iters,
            scale=scale,
            device=device,
            corr_mode=corr_mode,
            random_init=random_init,
            dtype=dtype,
        )


def _build_network(name, weights, description, *, iters, scale, device, corr_mode, random_init, dtype) -> FlowEstimator:
    e = MODELS[name]
    n = e.iters if iters is None else iters
    if dtype != torch.float32:
        description += f", {dtype_name(dtype)}"
    if e.family == "raft":
        small = name != "raft"
        model = (
            RAFT(small=small, corr_mode=corr_mode)
            if random_init
            else load_raft(weights, small=small, corr_mode=corr_mode)
        )
        model = set_compute_dtype(model.eval().to(device), dtype)
        return FlowEstimator(name, f"{description}, {n} iterations", _raft_fn(model, n), device, random_init, model)
    if e.family == "sea-raft":
        config = get_sea_raft_config(name)
        model = (
            SEARAFT(config, corr_mode=corr_mode) if random_init else load_sea_raft(weights, config, corr_mode=corr_mode)
        )
        model = set_compute_dtype(model.eval().to(device), dtype)
        n = config.iters if iters is None else iters
        s = config.scale if scale is None else scale
        desc = f"{description}, {n} iterations" + (f", inputs resized by 2^{s}" if s else "")
        return FlowEstimator(
            name, desc, lambda a, b: model.estimate(a, b, iters=n, scale=s)[0], device, random_init, model
        )
    if dtype != torch.float32:
        raise ValueError(f"{name} runs in float32 only (ptlflow's code); --dtype {dtype_name(dtype)} applies to ours")
    from daflow.models.baselines import load_ptlflow  # flowseek-*: optional extra

    wrapped = load_ptlflow(name, None if random_init else weights, iters=n).to(device)
    return FlowEstimator(name, description, wrapped, device, random_init, wrapped)


def dis_raft_estimator(
    weights=None,
    *,
    iters: int | None = None,
    device="cpu",
    corr_mode: str = "auto",
    root=None,
    levels: int | None = None,
    polish_rounds: int | None = None,
    fallback="default",
    dtype: str | torch.dtype | None = None,
) -> FlowEstimator:
    """The DIS→RAFT refiner (:mod:`daflow.models.refine`, coarse to fine, then polished): the bundled weights (below
    ``root``, the package's ``weights/`` by default), or ``weights`` (a ``daflow train refine`` run's
    ``model/raft.safetensors``). ``levels`` / ``polish_rounds`` / ``fallback`` (a :class:`~daflow.models.refine.Fallback`,
    None for never, ``"default"``): those of :mod:`daflow.models.refine`; ``dtype``: the network's compute dtype
    (:func:`daflow.models.precision.flow_dtype`; DIS, the fallback and the polish are float32 OpenCV/torch code)."""
    from daflow.models.bundled import REFINER, bundled_path
    from daflow.models.refine import (
        DEFAULT_FALLBACK,
        DEFAULT_POLISH,
        FINEST_ITERS,
        PYRAMID_ITERS,
        SINGLE_LEVEL_ITERS,
        FeatureMemo,
        refine_pyramid,
    )

    path = weights if weights is not None else bundled_path(REFINER, root) / "raft.safetensors"
    dtype = flow_dtype(dtype)
    model = load_raft(path, small=True, convex=True, corr_mode=corr_mode).eval().to(torch.device(device))
    set_compute_dtype(model, dtype)
    default = f"{SINGLE_LEVEL_ITERS} (one level) or {PYRAMID_ITERS} a coarse level and {FINEST_ITERS} at the finest"
    n = default if iters is None else iters
    rounds = DEFAULT_POLISH if polish_rounds is None else polish_rounds
    keep = DEFAULT_FALLBACK if fallback == "default" else fallback
    source = "bundled" if weights is None else str(weights)
    shape = f"{levels} level(s)" if levels else "coarse to fine"
    memo = FeatureMemo()  # consecutive pairs of a video share their middle frame's features
    return FlowEstimator(
        "dis-raft",
        f"DIS->RAFT refiner ({source}), {n} iterations, {shape}, {rounds} polish round(s)"
        + ("" if dtype == torch.float32 else f", {dtype_name(dtype)}"),
        lambda a, b: refine_pyramid(
            model, a, b, iters=iters, levels=levels, polish_rounds=rounds, fallback=keep, memo=memo
        ),
        torch.device(device),
        module=model,
    )
