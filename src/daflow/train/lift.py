"""Stage 1: fine-tune the lifted DiT4SR on F-frame clips with the flow-matching loss (paper §4.2, §5.1, Eq. 6).

Per step, for B clips of F frames (HQ and LQ, cropped): both are encoded by the frozen VAE (posterior *samples*,
as DiT4SR's training data); one σ per clip is drawn from the logit-normal density (``u = sigmoid(N(0, 1))``,
index ``⌊1000·u⌋`` into the 1000 shifted training σ of SD3.5's scheduler); ``z_σ = (1 − σ)·z₀ + σ·ε`` with
independent noise per frame; the lifted transformer predicts ``v`` for all F frames jointly (full
spatio-temporal attention) conditioned on the LQ latents and the null prompt.

**Loss and sign convention.** The network predicts ``v = ε − z₀`` (diffusers; the paper's Eq. 5 writes
``v = z_HQ − ε`` with ``t = 1 − σ``, the same field with the opposite sign). ``loss="x0"`` (default, DiT4SR's
``precondition_outputs``): ``‖(z_σ − σ·v) − z₀‖²`` = ``σ²·‖v − (ε − z₀)‖²``; ``loss="velocity"``: Eq. 6 as written,
``‖v − (ε − z₀)‖²``. Both are means over all latent entries; the logit-normal scheme has unit weights.

**Cross-frame completion** (``lq_mask`` > 0, not in the paper): in every frame, independently, a share of the LQ
latent's tokens (2×2 latent patches), drawn uniformly from ``[0, lq_mask]``, is set to zero before the transformer
sees it (:func:`mask_lq_tokens`), so that restoring those tokens needs the same content in the other frames of the
clip: a restoration target that rewards attention that finds corresponding tokens across frames (the idea of
cross-view completion and masked video modelling). The loss is unchanged; validation sees unmasked latents.

**What trains.** ``control`` (DiT4SR's own choice: every parameter whose name contains ``control``: the LQ
projections of both attentions and the FFN's control conv), ``attention`` (every parameter of ``attn`` and
``attn2``, the layers lifting changes) or ``all``.

The run is a pure function of (seed, step) (:mod:`daflow.train.data`): resuming reproduces the uninterrupted run.
Multi-GPU: ``accelerate launch -m daflow.cli train lift ...`` (each process takes its slice of every batch).
The paper captions every clip with DiT4SR's captioner during this stage (App. A.0.4); this trainer conditions on
the null prompt (the captioner and SD3's text encoders are not part of this package).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch

from daflow.models.backbone import DiffusionBackbone
from daflow.models.sampler import DEFAULT_SHIFT, training_sigmas
from daflow.models.vae import TOKEN_STRIDE, encode
from daflow.train.data import ClipSource, TrainingClips
from daflow.train.loop import Stage, TrainSettings, saved_as, step_generator, train_loop

log = logging.getLogger(__name__)

TRAINABLE = ("control", "attention", "all")
LIFT_SALT = 11
LOSSES = ("x0", "velocity")


@dataclass(frozen=True)
class LiftConfig(TrainSettings):
    """Stage-1 settings. ``batch`` is per process; the paper's 32 clips are 8 on each of 4 GPUs."""

    steps: int = 20_000
    batch: int = 8
    frames: int = 3
    crop: tuple[int, int] = (512, 512)
    lr: float = 5e-5
    warmup: int = 0
    weight_decay: float = 1e-2
    trainable: str = "control"
    loss: str = "x0"
    logit_mean: float = 0.0
    logit_std: float = 1.0
    shift: float = DEFAULT_SHIFT
    gradient_checkpointing: bool = True
    save_every: int = 1000
    workers: int = 4
    lq_mask: float = 0.0  # cross-frame completion: the largest share of LQ tokens masked per frame (module docstring)

    crop_multiple: ClassVar[int] = TOKEN_STRIDE

    def __post_init__(self):
        if not 0.0 <= self.lq_mask < 1.0:
            raise ValueError(f"lq_mask must be in [0, 1), got {self.lq_mask}")
        if self.trainable not in TRAINABLE:
            raise ValueError(f"trainable must be one of {TRAINABLE}, got {self.trainable!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        super().__post_init__()


LIFT_PRESETS: dict[str, LiftConfig] = {
    "paper": LiftConfig(),
    "tiny": LiftConfig(
        steps=200,
        batch=2,
        crop=(64, 64),
        lr=5e-4,
        trainable="all",
        gradient_checkpointing=False,
        save_every=100,
        log_every=10,
        workers=0,
    ),
}

#: settings that change what is trained; a resumed run must keep them
RUN_KEYS = (
    "batch",
    "frames",
    "crop",
    "lr",
    "warmup",
    "weight_decay",
    "trainable",
    "loss",
    "logit_mean",
    "logit_std",
    "shift",
    "seed",
    "lq_mask",
    "data",
    "model",
)


def trainable_parameters(model: torch.nn.Module, which: str) -> list[tuple[str, torch.nn.Parameter]]:
    """The named parameters ``which`` selects (see the module docstring); sets ``requires_grad`` accordingly."""
    if which not in TRAINABLE:
        raise ValueError(f"trainable must be one of {TRAINABLE}, got {which!r}")
    chosen = []
    for name, p in model.named_parameters():
        take = (
            which == "all"
            or (which == "control" and "control" in name)
            or (which == "attention" and (".attn." in name or ".attn2." in name))
        )
        p.requires_grad_(take)
        if take:
            chosen.append((name, p))
    if not chosen:
        raise ValueError(f"no parameter matches trainable={which!r}")
    return chosen


def sample_sigmas(
    batch: int, generator: torch.Generator, *, mean: float = 0.0, std: float = 1.0, shift: float = DEFAULT_SHIFT
) -> torch.Tensor:
    """``[batch]`` σ by SD3's logit-normal timestep density: ``u = sigmoid(N(mean, std))``, ``σ = sigmas[⌊1000u⌋]``."""
    sigmas = training_sigmas(shift=shift)
    u = torch.sigmoid(torch.randn(batch, generator=generator) * std + mean)
    return sigmas[(u * len(sigmas)).long().clamp(max=len(sigmas) - 1)]


def mask_lq_tokens(lq: torch.Tensor, max_share: float, generator: torch.Generator) -> torch.Tensor:
    """``lq`` ``[B·F, C, h, w]`` (h, w even) with, in each frame, a share ``U(0, max_share)`` of its tokens (2×2
    latent patches) set to zero, drawn independently per frame from ``generator``."""
    n, _, h, w = lq.shape
    share = torch.rand(n, 1, 1, 1, generator=generator) * max_share
    keep = (torch.rand(n, 1, h // 2, w // 2, generator=generator) >= share).to(lq.dtype)
    return lq * keep.repeat_interleave(2, 2).repeat_interleave(2, 3).to(lq.device)


def flow_matching_loss(
    model,
    z0: torch.Tensor,
    lq: torch.Tensor,
    text: torch.Tensor,
    pooled: torch.Tensor,
    sigma: torch.Tensor,
    noise: torch.Tensor,
    *,
    num_frames: int,
    loss: str = "x0",
) -> torch.Tensor:
    """The stage-1 loss for latents ``z0``/``lq`` ``[B·F, 16, h, w]``, per-clip ``sigma`` ``[B]`` and ``noise``."""
    s = sigma.to(z0).repeat_interleave(num_frames).view(-1, 1, 1, 1)
    z_t = (1 - s) * z0 + s * noise
    param = next(model.parameters())
    v = model(
        z_t.to(param.dtype), lq.to(param.dtype), text, pooled, sigma.to(z0.device) * 1000, num_frames=num_frames
    ).float()
    if loss == "x0":
        return ((z_t - s * v) - z0).pow(2).mean()
    return (v - (noise - z0)).pow(2).mean()


def validation_loss(
    backbone: DiffusionBackbone, dataset: TrainingClips, config: LiftConfig, *, clips: int = 8
) -> float:
    """Mean loss over ``clips`` fixed samples (counters far beyond any run), σ spread evenly over 0.05..0.95 and fixed
    noise: a low-variance progress signal (held-in clips; not a generalisation measure)."""
    transformer, device = backbone.transformer, backbone.device
    was_training = transformer.training
    transformer.eval()
    total = 0.0
    text, pooled = backbone.prompt.batch(1, device=device, dtype=torch.float32)
    with torch.no_grad():
        for i in range(clips):
            batch = dataset[2**60 + i]
            g = step_generator(config.seed, -1 - i, 0, LIFT_SALT)
            z0 = encode(backbone.vae, batch["hq"].to(device), generator=g).float()
            zl = encode(backbone.vae, batch["lq"].to(device)).float()
            sigma = torch.tensor([0.05 + 0.9 * i / max(clips - 1, 1)])
            noise = torch.randn(z0.shape, generator=g).to(device)
            total += float(
                flow_matching_loss(
                    transformer, z0, zl, text, pooled, sigma, noise, num_frames=z0.shape[0], loss=config.loss
                )
            )
    transformer.train(was_training)
    return total / clips


def lr_at(config: LiftConfig, step: int) -> float:
    """Constant learning rate after a linear warm-up of ``warmup`` steps."""
    return config.lr * min(1.0, (step + 1) / config.warmup) if config.warmup > 0 else config.lr


def dit_stage(
    name: str, transformer, params, dataset, loss, config, *, lr, record: dict, run_keys, on_checkpoint=None
) -> Stage:
    """The :class:`~daflow.train.loop.Stage` of a DiT4SR fine-tune (``lift``, ``one_step``): AdamW on ``params`` with
    the config's learning rate and weight decay, the transformer written to and read from ``transformer/`` in the
    published layout."""
    from daflow.models.dit4sr import load_dit4sr, save_dit4sr

    return Stage(
        name=name,
        module=transformer,
        params=params,
        dataset=dataset,
        loss=loss,
        make_optimizer=lambda ps: torch.optim.AdamW(ps, lr=config.lr, weight_decay=config.weight_decay),
        lr=lr,
        **saved_as(transformer, "transformer", save_dit4sr, lambda folder: load_dit4sr(folder, dtype=torch.float32)),
        on_checkpoint=on_checkpoint,
        record=record,
        run_keys=run_keys,
    )


def train_lift(
    backbone: DiffusionBackbone,
    source: ClipSource,
    run: str | Path,
    config: LiftConfig,
    *,
    model_info: dict | None = None,
    progress: bool = True,
    stop_at: int | None = None,
) -> dict:
    """Train (or resume) stage 1 into ``run``; returns a summary (steps done, first/last losses). ``stop_at`` ends
    the session after that step."""
    transformer = backbone.transformer.to(torch.float32).train()
    transformer.gradient_checkpointing = config.gradient_checkpointing
    params = [p for _, p in trainable_parameters(transformer, config.trainable)]
    dataset = TrainingClips(source, crop=config.crop, seed=config.seed, require=("hq", "lq"))
    text, pooled = backbone.prompt.batch(config.batch, device=backbone.device, dtype=torch.float32)

    def loss(module, batch, step: int, rank: int) -> torch.Tensor:
        g = step_generator(config.seed, step, rank, LIFT_SALT)
        hq, lq = batch["hq"], batch["lq"]
        b, f = hq.shape[:2]
        with torch.no_grad():
            z0 = encode(backbone.vae, hq.flatten(0, 1), sample=True, generator=g).float()
            zl = encode(backbone.vae, lq.flatten(0, 1), sample=True, generator=g).float()
            if config.lq_mask > 0:
                zl = mask_lq_tokens(zl, config.lq_mask, g)
        sigma = sample_sigmas(b, g, mean=config.logit_mean, std=config.logit_std, shift=config.shift)
        noise = torch.randn(z0.shape, generator=g).to(z0.device)
        return flow_matching_loss(
            module,
            z0,
            zl,
            text[:b].to(z0.device),
            pooled[:b].to(z0.device),
            sigma,
            noise,
            num_frames=f,
            loss=config.loss,
        )

    stage = dit_stage(
        "lift",
        transformer,
        params,
        dataset,
        loss,
        config,
        lr=lambda step: lr_at(config, step),
        record={**dataclasses.asdict(config), "data": source.spec, "model": model_info or {}},
        run_keys=RUN_KEYS,
        on_checkpoint=lambda step: {"val_loss": validation_loss(backbone, dataset, config)},
    )
    summary = train_loop(stage, run, config, device=backbone.device, progress=progress, stop_at=stop_at)
    transformer.gradient_checkpointing = False
    transformer.eval().requires_grad_(False)
    return summary
