"""Train the fidelity head of the tiny restorer (:mod:`daflow.models.fidelity`) beside the frozen one-step DiT.

Per step, for B clips of F frames (HQ and LQ crops): the frozen restorer's one-step output ``x̂_D``
(:func:`daflow.restoration.diffusion.one_step_images`, no gradients), the head's final frames
``x̂ = H(x_LQ, x̂_D)``, and the L1 loss ``|x̂ − x_HQ|`` on the 0..1 scale. With ``use_prior=False`` the head never
sees ``x̂_D`` (the control of the module :mod:`daflow.models.fidelity`), and the DiT is not run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from daflow.models.backbone import DiffusionBackbone
from daflow.models.fidelity import FIDELITY_PRESETS, FidelityConfig, FidelityHead, load_fidelity, save_fidelity
from daflow.train.loop import Stage, saved_as, train_loop
from daflow.train.one_step import OneStepCallSettings

RUN_KEYS = ("batch", "frames", "crop", "lr", "sigma", "head", "seed", "data", "model")


@dataclass(frozen=True)
class FidelityTrainConfig(OneStepCallSettings):
    """The head's settings; ``sigma``: σ* of the frozen one-step call."""

    steps: int = 3000
    lr: float = 5e-4


def train_fidelity(
    backbone: DiffusionBackbone,
    dataset,
    run: str | Path,
    config: FidelityTrainConfig,
    *,
    head_config: FidelityConfig | None = None,
    data_spec: str = "",
    model_info: dict | None = None,
    progress: bool = True,
    stop_at: int | None = None,
) -> dict:
    """Train (or resume) a fidelity head (``head_config``, default the ``tiny`` preset) into ``run``
    (``run/fidelity/``) on ``dataset`` (items with ``hq``/``lq``)."""
    from daflow.restoration.diffusion import one_step_images

    head_config = head_config or FIDELITY_PRESETS["tiny"]
    backbone.transformer.eval().requires_grad_(False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        head = FidelityHead(head_config)

    def loss(module, batch, step: int, rank: int) -> torch.Tensor:
        hq, lq = batch["hq"], batch["lq"]
        flat = lq.flatten(0, 1)
        prior = one_step_images(backbone, lq, sigma=config.sigma) if head_config.use_prior else flat
        return ((module(flat, prior) - hq.flatten(0, 1)) / 255.0).abs().mean()

    stage = Stage(
        name="fidelity",
        module=head,
        params=list(head.parameters()),
        dataset=dataset,
        loss=loss,
        make_optimizer=lambda ps: torch.optim.Adam(ps, lr=config.lr),
        lr=lambda step: config.lr,
        **saved_as(head, "fidelity", save_fidelity, load_fidelity),
        record={
            **dataclasses.asdict(config),
            "head": dataclasses.asdict(head_config),
            "data": data_spec,
            "model": model_info or {},
        },
        run_keys=RUN_KEYS,
    )
    summary = train_loop(stage, run, config, device=backbone.device, progress=progress, stop_at=stop_at)
    head.eval().requires_grad_(False)
    return summary
