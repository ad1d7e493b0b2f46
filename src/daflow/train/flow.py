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
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from daflow.files import atomic_write_text
from daflow.models.daflow import WEIGHTS_FILE, DAFlow
from daflow.models.vae import TOKEN_STRIDE
from daflow.train.checkpoint import (check_same_run, list_checkpoints, optimizer_from_tensors, read_state,
                                     save_checkpoint, truncate_log)
from daflow.train.data import ClipSource, StepSampler, TrainingClips
from daflow.train.losses import sequence_loss

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FlowTrainConfig:
    """Stage-2 settings (``batch`` per process; the paper: 32 clips on 4 GPUs, 20K steps, lr 5e-5, 512² crops)."""

    steps: int = 20_000
    batch: int = 8
    frames: int = 3
    crop: tuple[int, int] = (512, 512)
    lr: float = 5e-5
    weight_decay: float = 1e-5
    grad_clip: float = 1.0
    iters: int = 12
    gamma: float = 0.8
    max_flow: float = 400.0
    num_steps: int = 10
    mixed_precision: str = "auto"
    seed: int = 0
    save_every: int = 1000
    log_every: int = 10
    keep: int = 2
    workers: int = 4

    def __post_init__(self):
        object.__setattr__(self, "crop", tuple(int(c) for c in self.crop))
        for name in ("steps", "batch", "iters", "num_steps", "save_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.frames < 2:
            raise ValueError(f"frames must be >= 2, got {self.frames}")
        if any(c % TOKEN_STRIDE for c in self.crop):
            raise ValueError(f"crop sides must be multiples of {TOKEN_STRIDE}, got {self.crop}")
        if self.mixed_precision not in ("auto", "no", "bf16", "fp16"):
            raise ValueError(f"mixed_precision must be auto, no, bf16 or fp16, got {self.mixed_precision!r}")


FLOW_PRESETS: dict[str, FlowTrainConfig] = {
    "paper": FlowTrainConfig(),
    "tiny": FlowTrainConfig(steps=300, batch=2, crop=(64, 64), lr=4e-4, weight_decay=1e-4, iters=6, save_every=100,
                            workers=0),
}

RUN_KEYS = ("batch", "frames", "crop", "lr", "weight_decay", "iters", "gamma", "max_flow", "num_steps", "seed", "data",
            "model", "steps")


def one_cycle_lr(step: int, total: int, max_lr: float, *, pct_start: float = 0.05, div_factor: float = 25.0,
                 final_div_factor: float = 1e4) -> float:
    """RAFT's schedule (``OneCycleLR``, linear, no momentum cycling) at ``step`` of ``total`` scheduler steps."""
    initial = max_lr / div_factor
    final = initial / final_div_factor
    peak = float(pct_start * total) - 1
    if step <= peak:
        return initial + (max_lr - initial) * (step / peak if peak > 0 else 1.0)
    return max_lr + (final - max_lr) * min((step - peak) / (total - 1 - peak), 1.0)


def _step_rng(seed: int, step: int, rank: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, step, rank, 13]))


def flow_loss(model: DAFlow, batch: dict[str, torch.Tensor], *, step_index: int, config: FlowTrainConfig,
              noise_seeds: list[int]) -> torch.Tensor:
    """Eq. 18 on every pair of the batch's clips, with the features of denoising step ``step_index``."""
    lq = batch["lq"]
    out = model(lq, steps=[step_index], num_steps=config.num_steps, iters=config.iters, seed=noise_seeds,
                return_predictions=True)
    gt = batch["flow"].flatten(0, 1)
    valid = batch["valid"].flatten(0, 1)
    return sequence_loss(out.predictions[step_index], gt, valid, gamma=config.gamma, max_flow=config.max_flow)


def train_flow(model: DAFlow, source: ClipSource, run: str | Path, config: FlowTrainConfig, *,
               model_info: dict | None = None, save_backbone: bool = False, progress: bool = True,
               stop_at: int | None = None) -> dict:
    """Train (or resume) stage 2 into ``run``; returns a summary. ``model`` comes initialised (RAFT surgery).
    ``stop_at`` ends the session after that step (as an interruption would; the schedule still spans
    ``config.steps``)."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs
    from safetensors.torch import load_file

    run = Path(run)
    record = {**dataclasses.asdict(config), "crop": list(config.crop), "data": source.spec, "model": model_info or {}}
    mp = config.mixed_precision
    if mp == "auto":
        mp = "bf16" if torch.cuda.is_available() and model.device.type != "cpu" else "no"
    acc = Accelerator(mixed_precision=mp, cpu=model.device.type == "cpu",
                      kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    model.to(acc.device).train()
    if model.config.raft == "large":
        model.raft.freeze_bn()
    start, state = 0, None
    done = list_checkpoints(run)
    if done:
        step, saved, tensors, optim_meta, _ = read_state(done[-1])
        check_same_run(run, saved, json.loads(json.dumps(record)), RUN_KEYS)
        model.load_state_dict(load_file(str(done[-1] / "model" / WEIGHTS_FILE)), strict=False)
        start, state = step, (tensors, optim_meta)
        log.info("resuming %s from step %d", run, start)
    params = [p for n, p in model.named_parameters() if not n.startswith("backbone.")]
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, eps=1e-8)
    if state is not None:
        optimizer_from_tensors(optimizer, *state)
    wrapped, optimizer = acc.prepare(model, optimizer)
    if acc.is_main_process:
        run.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run / "train_flow.json", json.dumps(record, indent=2))
        truncate_log(run / "log.jsonl", start)
    dataset = TrainingClips(source, crop=config.crop, seed=config.seed, require=("lq", "flow"))
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=StepSampler(config.batch, start_step=start, rank=acc.process_index, world=acc.num_processes),
        num_workers=config.workers, multiprocessing_context="spawn" if config.workers > 0 else None)
    total = config.steps + 100  # RAFT's scheduler length
    losses: list[float] = []
    first_loss = None
    bar = tqdm(total=config.steps, initial=start, desc="flow", unit="step", disable=not (progress and acc.is_main_process))
    t0 = time.perf_counter()
    step = start
    batches = iter(loader)
    end = config.steps if stop_at is None else min(stop_at, config.steps)
    while step < end:
        batch = {k: v.to(acc.device) for k, v in next(batches).items()}
        rng = _step_rng(config.seed, step, acc.process_index)
        step_index = int(rng.integers(0, config.num_steps))
        seeds = [int(s) for s in rng.integers(0, 2**31 - 1, size=batch["lq"].shape[0])]
        for group in optimizer.param_groups:
            group["lr"] = one_cycle_lr(step, total, config.lr)
        with acc.autocast():
            loss = flow_loss(acc.unwrap_model(wrapped) if acc.num_processes == 1 else wrapped, batch,
                             step_index=step_index, config=config, noise_seeds=seeds)
        acc.backward(loss)
        if config.grad_clip > 0:
            acc.clip_grad_norm_(params, config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        value = float(acc.reduce(loss.detach(), reduction="mean"))
        first_loss = value if first_loss is None else first_loss
        losses.append(value)
        bar.update(1)
        bar.set_postfix(loss=f"{value:.3f}")
        if acc.is_main_process and (step % config.log_every == 0 or step == config.steps):
            entry = {"step": step, "loss": float(np.mean(losses[-config.log_every:])),
                     "lr": one_cycle_lr(step - 1, total, config.lr), "seconds": round(time.perf_counter() - t0, 3)}
            with open(run / "log.jsonl", "a") as fh:
                fh.write(json.dumps(entry) + "\n")
        if step % config.save_every == 0 or step == config.steps:
            acc.wait_for_everyone()
            if acc.is_main_process:
                unwrapped = acc.unwrap_model(wrapped)
                save_checkpoint(run, step, optimizer, config=record, keep=config.keep,
                                write_model=lambda folder: unwrapped.save(folder / "model", with_backbone=False))
    bar.close()
    if acc.is_main_process and step == config.steps:
        acc.unwrap_model(wrapped).save(run / "model", with_backbone=save_backbone)
    model.eval()
    return {"start": start, "steps": step, "first_loss": first_loss, "last_loss": losses[-1] if losses else None,
            "trainable_parameters": sum(p.numel() for p in params), "seconds": time.perf_counter() - t0}

