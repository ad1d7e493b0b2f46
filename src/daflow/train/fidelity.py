"""Train the fidelity head of the tiny restorer (:mod:`daflow.models.fidelity`) beside the frozen one-step DiT.

The DiT is frozen, so what the head sees of a training clip never changes: :func:`prepare_clips` computes it once
per clip, on the whole frames as ``daflow restore`` does (the one-step output ``x̂_D`` of
:func:`daflow.restoration.diffusion.one_step_images`, and for a video head the neighbours aligned by the flow model
of ``daflow restore``); the recipe keeps it in a file of the run, so a resumed run does not recompute it, and
:class:`PreparedClips` serves crops of it. Per step, for B crops of F frames: the head's final frames
``x̂ = H(x_LQ, x̂_D, N)`` and the L1 loss ``|x̂ − x_HQ|`` on the 0..1 scale, so a step costs only the head's own pass.
With ``use_prior=False`` the head never sees ``x̂_D`` (the control of the module :mod:`daflow.models.fidelity`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from daflow.models.fidelity import FIDELITY_PRESETS, FidelityConfig, FidelityHead, load_fidelity, save_fidelity
from daflow.train.data import epoch_clip_index
from daflow.train.loop import Stage, saved_as, train_loop
from daflow.train.one_step import OneStepCallSettings

RUN_KEYS = ("batch", "frames", "crop", "lr", "sigma", "head", "seed", "data", "model")


@dataclass(frozen=True)
class FidelityTrainConfig(OneStepCallSettings):
    """The head's settings; ``sigma``: σ* of the frozen one-step call."""

    steps: int = 3000
    lr: float = 5e-4


class PreparedClips(torch.utils.data.Dataset):
    """Sample ``i`` (the sample counter of :mod:`daflow.train.data`): a ``crop`` of a prepared clip as float tensors
    ``hq``, ``lq``, ``prior`` ``[F, 3, h, w]`` (0..255) and ``neighbours`` ``[F, 2, 4, h, w]`` (see
    :func:`daflow.restoration.temporal.align_neighbours`; zeros when prepared without a flow model).

    ``clips``: ``{"hq", "lq", "prior", "neighbours"}`` ``[N, F, …]`` from :func:`prepare_clips`."""

    def __init__(self, clips: dict[str, torch.Tensor], *, crop: tuple[int, int], seed: int = 0):
        self.clips, self.crop, self.seed = clips, crop, seed
        h, w = clips["hq"].shape[-2:]
        if crop[0] > h or crop[1] > w:
            raise ValueError(f"--crop {crop[0]}x{crop[1]} is larger than the prepared frames {h}x{w}")

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        index = epoch_clip_index(i, len(self.clips["hq"]), self.seed)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, i]))
        (h, w), (ch, cw) = self.clips["hq"].shape[-2:], self.crop
        top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        return {k: v[index, ..., top : top + ch, left : left + cw].float() for k, v in self.clips.items()}


def prepare_clips(
    backbone, source, *, sigma: float, flow_model=None, prefilter=None, progress: bool = True
) -> dict[str, torch.Tensor]:
    """What the head sees of every clip of ``source`` (a ClipSource with HQ frames and an LQ mirror), on whole
    frames: ``hq``, ``lq`` (uint8), ``prior`` (the one-step output at ``sigma``, float16) ``[N, F, 3, H, W]``, and
    ``neighbours`` ``[N, F, 2, 4, H, W]`` (float16) aligned by the flows of ``flow_model`` (a loaded
    :class:`~daflow.api.FlowModel`; zeros when None), computed as ``daflow restore`` computes them. With
    ``prefilter`` (:class:`~daflow.restoration.temporal.TemporalSettings`; needs ``flow_model``) the LQ frames are
    first temporally filtered with its flows, as ``daflow restore --prefilter`` does, and ``lq`` holds the result."""
    from tqdm import tqdm

    from daflow.restoration.diffusion import clip_flows, one_step_images
    from daflow.restoration.temporal import align_neighbours, filter_window

    if prefilter is not None and flow_model is None:
        raise ValueError("prepare_clips: a prefilter needs the flow model that aligns the frames")
    out: dict[str, list[torch.Tensor]] = {"hq": [], "lq": [], "prior": [], "neighbours": []}
    for index in tqdm(range(len(source.clips)), desc="prepare", unit="clip", disable=not progress):
        hq, lq = source.clips[index].frames, np.ascontiguousarray(source.lq_mirror[index].frames)
        if prefilter is not None:
            lq = filter_window(lq, flow_model.clip, prefilter)
        x = torch.from_numpy(lq).permute(0, 3, 1, 2).float()
        prior = one_step_images(backbone, x[None], sigma=sigma).cpu()
        n, _, h, w = x.shape
        if flow_model is None:
            nbr = torch.zeros(n, 2, 4, h, w)
        else:
            flows = clip_flows(flow_model.clip, lq, flow_model.device)
            nbr = align_neighbours(x, flows.fw, flows.bw, range(n))
        out["hq"].append(torch.from_numpy(np.ascontiguousarray(hq)).permute(0, 3, 1, 2))
        out["lq"].append(x.byte())
        out["prior"].append(prior.half())
        out["neighbours"].append(nbr.half())
    return {k: torch.stack(v) for k, v in out.items()}


def train_fidelity(
    dataset,
    run: str | Path,
    config: FidelityTrainConfig,
    *,
    device: str | torch.device = "cpu",
    head_config: FidelityConfig | None = None,
    data_spec: str = "",
    model_info: dict | None = None,
    progress: bool = True,
    stop_at: int | None = None,
) -> dict:
    """Train (or resume) a fidelity head (``head_config``, default the ``tiny`` preset) into ``run``
    (``run/fidelity/``) on ``dataset`` (:class:`PreparedClips`, or a mixture of them)."""
    head_config = head_config or FIDELITY_PRESETS["tiny"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        head = FidelityHead(head_config)

    def loss(module, batch, step: int, rank: int) -> torch.Tensor:
        hq, lq = batch["hq"], batch["lq"]
        flat = lq.flatten(0, 1)
        prior = batch["prior"].flatten(0, 1) if head_config.use_prior else flat
        nbr = batch["neighbours"].flatten(0, 1) if head_config.neighbours else None
        return ((module(flat, prior, nbr) - hq.flatten(0, 1)) / 255.0).abs().mean()

    stage = Stage(
        name="fidelity",
        module=head,
        params=list(head.parameters()),
        dataset=dataset,
        loss=loss,
        make_optimizer=lambda ps: torch.optim.Adam(ps, lr=config.lr),
        lr=lambda step: config.lr * 0.5 * (1 + np.cos(np.pi * step / config.steps)),  # cosine decay
        **saved_as(head, "fidelity", save_fidelity, load_fidelity),
        record={
            **dataclasses.asdict(config),
            "head": dataclasses.asdict(head_config),
            "data": data_spec,
            "model": model_info or {},
        },
        run_keys=RUN_KEYS,
    )
    summary = train_loop(stage, run, config, device=torch.device(device), progress=progress, stop_at=stop_at)
    head.eval().requires_grad_(False)
    return summary
