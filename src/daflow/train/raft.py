"""RAFT trained on flow labels: the "RAFT" (clean frames) and "RAFT*" (LQ frames, App. C.2) baselines and the tiny
recipe's teacher.

The same loss (Eq. 18), schedule (one-cycle), crops and data as stage 2 of DA-Flow (:mod:`daflow.train.flow`), so the
comparison isolates the diffusion features: ``inputs="hq"`` trains on the clean frames (RAFT as pre-trained for
clean video), ``inputs="lq"`` on the degraded ones (RAFT*, fine-tuned "using the identical setup as DA-Flow").
Every consecutive pair of each F-frame clip is a training pair. ``init`` starts from RAFT weights (``raft-things.pth``
or an earlier run's ``model/raft.safetensors``). The model is saved as ``RUN/model/raft.safetensors`` with
``config.json``; ``daflow evaluate --model raft-small --weights RUN/model/raft.safetensors`` reads it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch

from daflow.files import atomic_path, atomic_write_text
from daflow.models.raft import RAFT, InputPadder
from daflow.models.raft_weights import load_raft
from daflow.train.data import ClipSource, TrainingClips
from daflow.train.flow import one_cycle_lr
from daflow.train.loop import SequenceLossSettings, Stage, saved_as, train_loop
from daflow.train.losses import sequence_loss

WEIGHTS = "raft.safetensors"


@dataclass(frozen=True)
class RAFTTrainConfig(SequenceLossSettings):
    steps: int = 20_000
    batch: int = 8
    frames: int = 2
    crop: tuple[int, int] = (512, 512)
    inputs: str = "lq"
    small: bool = False
    lr: float = 5e-5
    weight_decay: float = 1e-5
    save_every: int = 1000
    workers: int = 4

    crop_multiple: ClassVar[int] = 8  # RAFT's 1/8 features and its 4-level pyramid
    min_crop: ClassVar[int] = 64
    min_frames: ClassVar[int] = 2

    def __post_init__(self):
        super().__post_init__()
        if self.inputs not in ("hq", "lq"):
            raise ValueError(f"inputs must be 'hq' (clean frames) or 'lq' (degraded), got {self.inputs!r}")


RAFT_PRESETS = {
    "paper": RAFTTrainConfig(),
    "tiny": RAFTTrainConfig(
        steps=300,
        batch=2,
        frames=3,
        crop=(64, 64),
        small=True,
        lr=4e-4,
        weight_decay=1e-4,
        iters=6,
        save_every=100,
        workers=0,
    ),
}
RUN_KEYS = (
    "batch",
    "frames",
    "crop",
    "inputs",
    "small",
    "lr",
    "weight_decay",
    "iters",
    "gamma",
    "max_flow",
    "seed",
    "data",
    "steps",
    "init",
)


def save_raft(model: RAFT, folder: Path) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / WEIGHTS) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(tmp))
    convex = model.small and hasattr(model.update_block, "mask")  # the DIS->RAFT refiner (daflow.models.refine)
    config = (
        {"_class_name": "DISRefiner", "small": True, "init": "dis-medium"}
        if convex
        else {"_class_name": "RAFT", "small": model.small}
    )
    atomic_write_text(folder / "config.json", json.dumps(config, indent=2))


def train_raft(
    source: ClipSource,
    run: str | Path,
    config: RAFTTrainConfig,
    *,
    init: str | Path | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
    stop_at: int | None = None,
) -> dict:
    """Train (or resume) RAFT on ``config.inputs`` frames of ``source`` into ``run/model``."""
    device = torch.device(device)
    if init is not None:
        model = load_raft(init, small=config.small)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            model = RAFT(small=config.small)
    model.to(device).train()
    if init is not None and not config.small:
        model.freeze_bn()
    key = config.inputs
    total = config.steps + 100

    def loss(module, batch, step: int, rank: int) -> torch.Tensor:
        frames = batch[key]
        first, second = frames[:, :-1].flatten(0, 1), frames[:, 1:].flatten(0, 1)
        padder = InputPadder(first.shape)
        first, second = padder.pad_images(first, second)
        out = module(first, second, iters=config.iters)
        predictions = [padder.unpad(p) for p in out.flow_predictions]
        return sequence_loss(
            predictions,
            batch["flow"].flatten(0, 1),
            batch["valid"].flatten(0, 1),
            gamma=config.gamma,
            max_flow=config.max_flow,
        )

    stage = Stage(
        name="raft",
        module=model,
        loss=loss,
        dataset=TrainingClips(source, crop=config.crop, seed=config.seed, require=(key, "flow")),
        make_optimizer=lambda ps: torch.optim.AdamW(ps, lr=config.lr, weight_decay=config.weight_decay, eps=1e-8),
        lr=lambda step: one_cycle_lr(step, total, config.lr),
        **saved_as(model, "model", save_raft, lambda folder: load_raft(folder / WEIGHTS, small=config.small)),
        record={
            **dataclasses.asdict(config),
            "data": source.spec,
            "init": str(init) if init else None,
        },
        run_keys=RUN_KEYS,
    )
    summary = train_loop(stage, run, config, device=device, progress=progress, stop_at=stop_at)
    model.eval()
    return summary
