"""Stage 2: train DA-Flow's flow network with the DiT frozen (paper §4.4.3, §5.1, Eq. 18).

Per step, for B clips of F frames (LQ frames, flow labels of every pair: teacher pseudo ground truth on the HQ
frames, or exact ground truth for synthetic clips, random crops): a denoising step ``k`` is drawn per batch (uniform
over the schedule's steps; the paper trains on the features "extracted during the iterative denoising process" and
reports every step, without saying how steps are sampled) and the frozen lifted DiT4SR runs its denoising up to it
(``k + 1`` calls, no gradients); the DPT heads and the hybrid RAFT predict ``M = 12`` flows per pair and Eq. 18 (γ = 0.8,
``|gt| < 400``) is their loss.

Initialisation: RAFT from ``raft-things.pth`` (App. A.0.2) with the GRU's new context columns zero
(:meth:`~daflow.models.daflow.DAFlow.init_raft`) and its BatchNorm frozen as in RAFT's fine-tuning stages; the DPT heads
keep their random initialisation (zero query *and* key heads would have no gradient through their product).
AdamW, RAFT's one-cycle schedule (linear, 5 % warm-up, over steps + 100), gradient clipping at 1.

As stage 1, the run is a pure function of (seed, step) and resumes exactly from its safetensors checkpoints.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from daflow.models.daflow import WEIGHTS_FILE, DAFlow
from daflow.models.vae import TOKEN_STRIDE
from daflow.train.data import ClipSource, TrainingClips
from daflow.train.loop import SequenceLossSettings, Stage, step_seed, train_loop
from daflow.train.losses import sequence_loss

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FlowTrainConfig(SequenceLossSettings):
    """Stage-2 settings (``batch`` per process; the paper: 32 clips on 4 GPUs, 20K steps, lr 5e-5, 512² crops)."""

    steps: int = 20_000
    batch: int = 8
    frames: int = 3
    crop: tuple[int, int] = (512, 512)
    lr: float = 5e-5
    weight_decay: float = 1e-5
    num_steps: int = 10
    save_every: int = 1000
    workers: int = 4

    crop_multiple: ClassVar[int] = TOKEN_STRIDE
    min_frames: ClassVar[int] = 2

    def __post_init__(self):
        super().__post_init__()
        for name in ("iters", "num_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


FLOW_PRESETS: dict[str, FlowTrainConfig] = {
    "paper": FlowTrainConfig(),
    "tiny": FlowTrainConfig(
        steps=300, batch=2, crop=(64, 64), lr=4e-4, weight_decay=1e-4, iters=6, save_every=100, workers=0
    ),
}

RUN_KEYS = (
    "batch",
    "frames",
    "crop",
    "lr",
    "weight_decay",
    "iters",
    "gamma",
    "max_flow",
    "num_steps",
    "seed",
    "data",
    "model",
    "steps",
)


def one_cycle_lr(
    step: int,
    total: int,
    max_lr: float,
    *,
    pct_start: float = 0.05,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> float:
    """RAFT's schedule (``OneCycleLR``, linear, no momentum cycling) at ``step`` of ``total`` scheduler steps."""
    initial = max_lr / div_factor
    final = initial / final_div_factor
    peak = float(pct_start * total) - 1
    if step <= peak:
        return initial + (max_lr - initial) * (step / peak if peak > 0 else 1.0)
    return max_lr + (final - max_lr) * min((step - peak) / (total - 1 - peak), 1.0)


def flow_loss(
    model: DAFlow, batch: dict[str, torch.Tensor], *, step_index: int, config: FlowTrainConfig, noise_seeds: list[int]
) -> torch.Tensor:
    """Eq. 18 on every pair of the batch's clips, with the features of denoising step ``step_index``."""
    lq = batch["lq"]
    out = model(
        lq,
        steps=[step_index],
        num_steps=config.num_steps,
        iters=config.iters,
        seed=noise_seeds,
        return_predictions=True,
    )
    gt = batch["flow"].flatten(0, 1)
    valid = batch["valid"].flatten(0, 1)
    return sequence_loss(out.predictions[step_index], gt, valid, gamma=config.gamma, max_flow=config.max_flow)


def saved_daflow(model: DAFlow, *, with_backbone: bool) -> dict:
    """The ``write_model`` / ``read_model`` / ``final_model`` of a :class:`~daflow.train.loop.Stage` that trains
    ``model``'s flow network: checkpoints hold ``model/`` without the frozen backbone, the final ``RUN/model`` holds it
    too when ``with_backbone``."""
    from safetensors.torch import load_file

    return {
        "write_model": lambda module, folder: module.save(folder / "model", with_backbone=False),
        "final_model": lambda module, folder: module.save(folder / "model", with_backbone=with_backbone),
        "read_model": lambda folder: model.load_state_dict(
            load_file(str(folder / "model" / WEIGHTS_FILE)), strict=False
        ),
    }


def train_flow(
    model: DAFlow,
    source: ClipSource,
    run: str | Path,
    config: FlowTrainConfig,
    *,
    model_info: dict | None = None,
    save_backbone: bool = False,
    progress: bool = True,
    stop_at: int | None = None,
) -> dict:
    """Train (or resume) stage 2 into ``run``; returns a summary. ``model`` comes initialised (RAFT surgery).
    ``stop_at`` ends the session after that step (as an interruption would; the schedule still spans
    ``config.steps``)."""
    model.train()
    if model.config.raft == "large":
        model.raft.freeze_bn()
    params = [p for n, p in model.named_parameters() if not n.startswith("backbone.")]
    for p in params:
        p.requires_grad_(True)
    total = config.steps + 100  # RAFT's scheduler length

    def loss(module, batch, step: int, rank: int) -> torch.Tensor:
        rng = np.random.default_rng(step_seed(config.seed, step, rank, 13))
        step_index = int(rng.integers(0, config.num_steps))
        seeds = [int(s) for s in rng.integers(0, 2**31 - 1, size=batch["lq"].shape[0])]
        return flow_loss(module, batch, step_index=step_index, config=config, noise_seeds=seeds)

    stage = Stage(
        name="flow",
        module=model,
        params=params,
        loss=loss,
        dataset=TrainingClips(source, crop=config.crop, seed=config.seed, require=("lq", "flow")),
        make_optimizer=lambda ps: torch.optim.AdamW(ps, lr=config.lr, weight_decay=config.weight_decay, eps=1e-8),
        lr=lambda step: one_cycle_lr(step, total, config.lr),
        **saved_daflow(model, with_backbone=save_backbone),
        record={
            **dataclasses.asdict(config),
            "data": source.spec,
            "model": model_info or {},
        },
        run_keys=RUN_KEYS,
    )
    summary = train_loop(stage, run, config, device=model.device, progress=progress, stop_at=stop_at)
    model.eval()
    return summary
