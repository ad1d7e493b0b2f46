"""The training loop every stage shares: accelerate (bf16 autocast on GPU, multi-GPU), exact resume, logs, checkpoints.

A stage supplies a :class:`Stage`: the module to optimise and its trainable parameters, the optimizer, the dataset
of training items (addressed by sample counter, :mod:`daflow.train.data`), the loss of one batch at one step, the
learning rate at a step, and how its model is written and read back. :func:`train_loop` does the rest:

- resumes from the newest complete checkpoint of ``run`` (refusing one made with other ``run_keys`` settings);
- draws batch ``step`` from the counters ``step·batch …`` so that a resumed run repeats the uninterrupted one;
- logs the mean loss every ``log_every`` steps to ``run/log.jsonl`` (lines after the resumed step are dropped);
- checkpoints every ``save_every`` steps (model + optimizer in safetensors, :mod:`daflow.train.checkpoint`) and
  writes the final model when the last step is done.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from tqdm import tqdm

from daflow.files import atomic_write_text
from daflow.train.checkpoint import (
    check_same_run,
    list_checkpoints,
    optimizer_from_tensors,
    read_state,
    save_checkpoint,
    truncate_log,
)
from daflow.train.data import StepSampler

log = logging.getLogger(__name__)

MIXED_PRECISION = ("auto", "no", "bf16", "fp16")  # auto: bf16 on CUDA, none on CPU


def step_seed(seed: int, step: int, rank: int, salt: int) -> np.random.SeedSequence:
    """The randomness of one training step on one process (``salt`` keeps stages apart): a run that is a pure function
    of (seed, step) resumes exactly. Negative steps (fixed validation draws) wrap to distinct values."""
    return np.random.SeedSequence([seed, step % 2**63, rank, salt])


def step_generator(seed: int, step: int, rank: int, salt: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded by :func:`step_seed`."""
    return torch.Generator().manual_seed(int(step_seed(seed, step, rank, salt).generate_state(1)[0]))


@dataclass(frozen=True)
class TrainSettings:
    """The loop and optimiser settings every training stage shares. Each stage's config (``LiftConfig``,
    ``FlowTrainConfig``, ``RAFTTrainConfig``, ``VAETrainConfig``, ``RefineTrainConfig``) extends it with its own
    fields and its own defaults, and :func:`train_loop` reads these from it: the fields are declared once."""

    steps: int = 1000
    batch: int = 8
    lr: float = 1e-4
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    mixed_precision: str = "auto"  # auto: bf16 on CUDA, none on CPU
    seed: int = 0
    save_every: int = 1000
    log_every: int = 10
    keep: int = 2
    workers: int = 0

    #: what a stage's ``crop`` (when it has one: sides are normalised to a tuple of ints) and ``frames`` must satisfy
    crop_multiple: ClassVar[int] = 1
    min_crop: ClassVar[int] = 1
    min_frames: ClassVar[int] = 1

    def __post_init__(self):
        if hasattr(self, "crop"):
            object.__setattr__(self, "crop", tuple(int(c) for c in self.crop))
            if any(c % self.crop_multiple for c in self.crop) or min(self.crop) < self.min_crop:
                least = f" and at least {self.min_crop}" if self.min_crop > 1 else ""
                raise ValueError(f"crop sides must be multiples of {self.crop_multiple}{least}, got {self.crop}")
        if getattr(self, "frames", self.min_frames) < self.min_frames:
            raise ValueError(f"frames must be >= {self.min_frames}, got {self.frames}")
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(f"mixed_precision must be auto, no, bf16 or fp16, got {self.mixed_precision!r}")
        for name in ("steps", "batch", "save_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")


@dataclass(frozen=True)
class SequenceLossSettings(TrainSettings):
    """The settings of the flow stages trained with RAFT's sequence loss (Eq. 18, :func:`daflow.train.losses.
    sequence_loss`): ``iters`` refinement iterations M, the weight decay ``gamma`` and the flow magnitude above which
    a pixel is left out (``max_flow``)."""

    iters: int = 12
    gamma: float = 0.8
    max_flow: float = 400.0


@dataclass
class Stage:
    """What one training stage is made of (see the module docstring).

    ``loss(module, batch, step, rank)`` returns the scalar loss of ``batch`` (already on the device); ``module`` is
    the accelerate-prepared module. ``write_model(module, folder)`` writes the unwrapped module's model files (into a
    checkpoint, and at the end into the run folder unless ``final_model`` does that differently), ``read_model(folder)``
    loads them back into it. ``on_checkpoint(step)`` may return extra numbers to record
    (e.g. a validation loss). ``name`` labels the progress bar and the record file ``train_<name>.json``.
    """

    name: str
    module: torch.nn.Module
    make_optimizer: Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer]
    dataset: Any
    loss: Callable[[torch.nn.Module, dict[str, torch.Tensor], int, int], torch.Tensor]
    lr: Callable[[int], float]
    write_model: Callable[[torch.nn.Module, Path], None]
    read_model: Callable[[Path], None]
    params: list[torch.nn.Parameter] | None = None  # the trained ones: every parameter of ``module`` when None
    on_checkpoint: Callable[[int], dict] | None = None
    final_model: Callable[[torch.nn.Module, Path], None] | None = None
    record: dict = field(default_factory=dict)
    run_keys: tuple[str, ...] = ()

    def __post_init__(self):
        if self.params is None:
            self.params = list(self.module.parameters())


def saved_as(module: torch.nn.Module, subfolder: str, save: Callable, load: Callable) -> dict:
    """The ``write_model`` / ``read_model`` of a :class:`Stage` whose model is ``module``, written by
    ``save(module, folder / subfolder)`` and read back into it from ``load(folder / subfolder)``."""

    def read_model(folder: Path) -> None:
        module.load_state_dict(load(folder / subfolder).state_dict())

    return {"write_model": lambda m, folder: save(m, folder / subfolder), "read_model": read_model}


def train_loop(
    stage: Stage,
    run: str | Path,
    settings: TrainSettings,
    *,
    device: torch.device,
    progress: bool = True,
    stop_at: int | None = None,
) -> dict:
    """Run (or resume) ``stage`` into ``run``; ``stop_at`` ends this session after that step (as an interruption
    would). Returns ``{"start", "steps", "first_loss", "last_loss", "trainable_parameters", "seconds"}``."""
    run = Path(run)
    acc, mp = _accelerator(settings, device)
    record = {**json.loads(json.dumps(stage.record)), "threads": torch.get_num_threads()}
    start, state = _resume(stage, run, record)
    optimizer = stage.make_optimizer(stage.params)
    if state is not None:
        optimizer_from_tensors(optimizer, *state)
    module, optimizer = acc.prepare(stage.module, optimizer)
    if acc.is_main_process:
        run.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run / f"train_{stage.name}.json", json.dumps(record, indent=2))
        truncate_log(run / "log.jsonl", start)
    sampler = StepSampler(settings.batch, start_step=start, rank=acc.process_index, world=acc.num_processes)
    loader = torch.utils.data.DataLoader(
        stage.dataset,
        batch_sampler=sampler,
        num_workers=settings.workers,
        multiprocessing_context="spawn" if settings.workers > 0 else None,
    )
    n_trainable = sum(p.numel() for p in stage.params)
    log.info(
        "%s: %d trainable parameters, %s precision, %d process(es)", stage.name, n_trainable, mp, acc.num_processes
    )
    losses: list[float] = []
    show = progress and acc.is_main_process
    bar = tqdm(total=settings.steps, initial=start, desc=stage.name, unit="step", disable=not show)
    t0 = time.perf_counter()
    step = start
    end = settings.steps if stop_at is None else min(stop_at, settings.steps)
    batches = iter(loader)
    while step < end:
        losses.append(_train_step(acc, module, optimizer, stage, next(batches), step, settings))
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
        if acc.is_main_process and (step % settings.log_every == 0 or step == settings.steps):
            mean = float(np.mean(losses[-settings.log_every :]))
            seconds = round(time.perf_counter() - t0, 3)
            _log(run, {"step": step, "loss": mean, "lr": stage.lr(step - 1), "seconds": seconds})
        if step % settings.save_every == 0 or step == settings.steps:
            _checkpoint(acc, module, optimizer, stage, run, step, record, settings)
    bar.close()
    if acc.is_main_process and step == settings.steps:
        (stage.final_model or stage.write_model)(acc.unwrap_model(module), run)
    return {
        "start": start,
        "steps": step,
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        "trainable_parameters": n_trainable,
        "seconds": time.perf_counter() - t0,
    }


def _accelerator(settings: TrainSettings, device: torch.device):
    """The accelerate ``Accelerator`` of a run and its mixed precision (``auto``: bf16 on CUDA, none on CPU)."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    mp = settings.mixed_precision
    if mp == "auto":
        mp = "bf16" if torch.cuda.is_available() and device.type != "cpu" else "no"
    acc = Accelerator(
        mixed_precision=mp,
        cpu=device.type == "cpu",
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )
    return acc, mp


def _resume(stage: Stage, run: Path, record: dict):
    """``(start step, (optimizer tensors, meta) or None)`` from the newest complete checkpoint of ``run``, the model
    read back into the stage; refuses a checkpoint made with other ``run_keys`` settings."""
    done = list_checkpoints(run)
    if not done:
        return 0, None
    step, saved, tensors, optim_meta, _ = read_state(done[-1])
    check_same_run(run, saved, record, stage.run_keys)
    stage.read_model(done[-1])
    log.info("resuming %s from step %d", run, step)
    return step, (tensors, optim_meta)


def _train_step(acc, module, optimizer, stage: Stage, batch: dict, step: int, settings: TrainSettings) -> float:
    """One optimiser step on ``batch``; returns its loss (averaged over processes)."""
    batch = {k: v.to(acc.device) for k, v in batch.items()}
    for group in optimizer.param_groups:
        group["lr"] = stage.lr(step)
    with acc.autocast():
        loss = stage.loss(module, batch, step, acc.process_index)
    acc.backward(loss)
    if settings.grad_clip > 0:
        acc.clip_grad_norm_(stage.params, settings.grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(acc.reduce(loss.detach(), reduction="mean"))


def _checkpoint(acc, module, optimizer, stage: Stage, run: Path, step: int, record: dict, settings) -> None:
    """Write checkpoint ``step`` (model, optimizer, the stage's extra numbers) on the main process."""
    acc.wait_for_everyone()
    if not acc.is_main_process:
        return
    unwrapped = acc.unwrap_model(module)
    extra = stage.on_checkpoint(step) if stage.on_checkpoint else {}
    save_checkpoint(
        run,
        step,
        optimizer,
        config=record,
        keep=settings.keep,
        extra=extra,
        write_model=lambda folder, m=unwrapped: stage.write_model(m, folder),
    )
    if extra:
        _log(run, {"step": step, **extra})


def _log(run: Path, entry: dict) -> None:
    with open(run / "log.jsonl", "a") as fh:
        fh.write(json.dumps(entry) + "\n")
