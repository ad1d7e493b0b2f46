"""Training the DIS→RAFT refiner (:mod:`daflow.models.refine`) on the mixture clips of :mod:`daflow.train.mixture`.

Loss: RAFT's sequence loss (Eq. 18) on every iteration's flow against the exact synthetic flow; the network sees
the degraded frames and DIS run on them (on the whole frame, before cropping, as at inference). One-cycle
schedule, AdamW, exact resume (:mod:`daflow.train.loop`). Items are addressed by the running sample counter
(:mod:`daflow.train.data`): clip, pair, crop and flips of item ``i`` come from ``SeedSequence([seed, i])``.
Augmentation: random crop, horizontal and vertical flips (the flow's sign flipped with them). With ``coarse_prob``
a share of the steps sees its whole batch area-downsampled by 2 (frames, DIS and the target flow, whose values halve):
the frames :func:`~daflow.models.refine.refine_pyramid` gives the network on its coarser levels.

With ``hybrid`` (a :class:`~daflow.models.daflow.DAFlow` built with ``refiner=True``, e.g. by
:meth:`~daflow.models.daflow.DAFlow.from_refiner`) the same loop trains DA-Flow's stage 2 on the same clips: its DPT
heads and hybrid RAFT learn, the DiT stays frozen, and each pair's diffusion features come from denoising step 0
(the single-step mode) with a fresh noise seed a sample.

    daflow train refine --cache MIX -o RUN --preset default      (MIX: daflow.train.mixture.build_cache)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from daflow.flow.warp import resize_flow
from daflow.models.raft import RAFT
from daflow.models.raft_weights import load_raft, read_state_dict
from daflow.models.refine import dis_init
from daflow.train.data import epoch_clip_index
from daflow.train.flow import one_cycle_lr, saved_daflow
from daflow.train.loop import SequenceLossSettings, Stage, saved_as, step_seed, train_loop
from daflow.train.losses import sequence_loss
from daflow.train.mixture import MixtureCache
from daflow.train.raft import WEIGHTS, save_raft


@dataclass(frozen=True)
class RefineTrainConfig(SequenceLossSettings):
    """The refiner's settings (module docstring); the loop and sequence-loss fields are
    :class:`~daflow.train.loop.SequenceLossSettings`'s."""

    steps: int = 2500
    batch: int = 4
    crop: tuple[int, int] = (256, 256)
    lr: float = 4e-4
    weight_decay: float = 1e-4
    iters: int = 8
    save_every: int = 250
    workers: int = 0
    coarse_prob: float = 0.0  # share of steps on batches area-downsampled by 2 (module docstring)

    crop_multiple: ClassVar[int] = 8  # RAFT's 1/8 features and its 4-level pyramid
    min_crop: ClassVar[int] = 64

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.coarse_prob <= 1.0:
            raise ValueError(f"coarse_prob must be in [0, 1], got {self.coarse_prob}")
        if self.coarse_prob and (any(c % 16 for c in self.crop) or min(self.crop) < 128):
            raise ValueError(
                f"coarse steps halve the crop: it must be multiples of 16 and at least 128, got {self.crop}"
            )


REFINE_PRESETS = {
    "default": RefineTrainConfig(),
    "tiny": RefineTrainConfig(steps=6, batch=2, crop=(64, 64), iters=3, save_every=3, log_every=1),
}
RUN_KEYS = ("batch", "crop", "lr", "weight_decay", "iters", "gamma", "max_flow", "seed", "steps", "coarse_prob")
RUN_KEYS += ("cache", "init", "hybrid")  # the clips, the starting weights, DA-Flow's backbone


class MixturePairs(torch.utils.data.Dataset):
    """Item ``i``: ``lq`` ``[2, 3, h, w]`` (float 0..255), ``flow`` and ``dis`` ``[2, h, w]``, ``valid`` ``[h, w]``."""

    def __init__(self, cache: MixtureCache, crop: tuple[int, int], seed: int = 0):
        self.cache, self.crop, self.seed = cache, crop, seed

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        index = epoch_clip_index(i, len(self.cache), self.seed)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, i]))
        clip = self.cache[index]
        k = int(rng.integers(len(clip["flow"])))
        h, w = clip["lq"].shape[1:3]
        ch, cw = min(self.crop[0], h // 8 * 8), min(self.crop[1], w // 8 * 8)
        top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        win = (slice(top, top + ch), slice(left, left + cw))
        lq = (
            torch.from_numpy(np.ascontiguousarray(clip["lq"][k : k + 2][:, win[0], win[1]])).permute(0, 3, 1, 2).float()
        )
        flow = torch.from_numpy(np.ascontiguousarray(clip["flow"][k][win])).permute(2, 0, 1).float()
        dis = torch.from_numpy(np.ascontiguousarray(clip["dis"][k][win])).permute(2, 0, 1).float()
        if rng.random() < 0.5:  # horizontal flip
            lq, flow, dis = lq.flip(-1), flow.flip(-1), dis.flip(-1)
            flow[0], dis[0] = -flow[0], -dis[0]
        if rng.random() < 0.2:  # vertical flip
            lq, flow, dis = lq.flip(-2), flow.flip(-2), dis.flip(-2)
            flow[1], dis[1] = -flow[1], -dis[1]
        return {"lq": lq, "flow": flow, "dis": dis, "valid": torch.ones(ch, cw)}


def coarse_batch(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A :class:`MixturePairs` batch area-downsampled by 2 as :func:`~daflow.models.refine.refine_pyramid` does on a
    coarser level: frames ``[B, 2, 3, h, w]`` → ``[B, 2, 3, h/2, w/2]``, flows (target and DIS) resized with their
    values halved, a pixel valid where its four source pixels all are."""
    b, n, c, h, w = batch["lq"].shape
    lq = F.interpolate(batch["lq"].reshape(b * n, c, h, w), scale_factor=0.5, mode="area").reshape(
        b, n, c, h // 2, w // 2
    )
    size = (h // 2, w // 2)
    valid = F.avg_pool2d(batch["valid"][:, None], 2)[:, 0] >= 1.0
    return {
        "lq": lq,
        "flow": resize_flow(batch["flow"], size, "area"),
        "dis": resize_flow(batch["dis"], size, "area"),
        "valid": valid.to(batch["valid"].dtype),
    }


def init_refiner(init: str | Path | None, *, seed: int = 0) -> RAFT:
    """The refiner before training: RAFT-small with the convex-upsampling head (:class:`SmallUpdateBlock`), from
    ``init`` (a plain RAFT-small state dict: its mask head starts at zero, i.e. an even 3×3 mix) or seeded random."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = RAFT(small=True, convex=True)
    if init is None:
        return model
    state = read_state_dict(init)
    if not any(k.startswith("update_block.mask.") for k in state):
        head = model.update_block.mask[2]
        torch.nn.init.zeros_(head.weight)
        torch.nn.init.zeros_(head.bias)
        state = {**state, **{f"update_block.mask.{k}": v for k, v in model.update_block.mask.state_dict().items()}}
    return load_raft(state, small=True, convex=True)


def hybrid_refiner(
    preset: str,
    init: str | Path,
    *,
    dit4sr: str | Path | None = None,
    vae: str | Path | None = None,
    random_dit: bool = False,
    seed: int = 0,
):
    """DA-Flow of ``preset`` (``refiner=True``) on the trained refiner ``init`` (:meth:`DAFlow.from_refiner`), its
    backbone the DiT ``dit4sr`` and VAE ``vae`` (default: the bundled restorer's), the DiT at seeded random weights of
    the same shape with ``random_dit`` (a control: the features' content against the extra capacity); returns
    ``(model, record)``, the record naming what it was built from."""
    from daflow.models.backbone import DiffusionBackbone
    from daflow.models.daflow import DAFLOW_PRESETS, DAFlow
    from daflow.models.dit4sr import DiT4SRTransformer

    if preset not in DAFLOW_PRESETS or not DAFLOW_PRESETS[preset].refiner:
        choices = [n for n, c in DAFLOW_PRESETS.items() if c.refiner]
        raise ValueError(
            f"--daflow must name a DA-Flow preset built on the refiner ({', '.join(choices)}), got {preset!r}"
        )
    if (dit4sr is None) != (vae is None):
        raise ValueError("give --dit4sr and --vae together (or neither, for the bundled restorer's)")
    if dit4sr is None:
        from daflow.models.bundled import RESTORER, bundled_path, load_restorer

        backbone, source = load_restorer(), str(bundled_path(RESTORER))
        backbone.fidelity = None  # the restorer's fidelity head plays no part in the features
    else:
        backbone, source = DiffusionBackbone.from_pretrained(dit4sr, vae), f"{dit4sr} + {vae}"
    if random_dit:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            backbone.transformer = DiT4SRTransformer(backbone.transformer.config)
    model = DAFlow.from_refiner(preset, backbone, init, seed=seed)
    return model, {"preset": preset, "backbone": source, "random_dit": random_dit}


def train_refiner(
    cache: str | Path,
    run: str | Path,
    config: RefineTrainConfig,
    *,
    init: str | Path | None = None,
    hybrid=None,
    hybrid_info: dict | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
    stop_at: int | None = None,
) -> dict:
    """Train (or resume) the refiner on the mixture clips in ``cache`` into ``run/model/raft.safetensors``.
    ``init``: RAFT-small weights to start from (e.g. the bundled RAFT*-tiny); random otherwise. ``hybrid``: train
    this DA-Flow (``refiner=True``; module docstring) instead, into the DA-Flow folder ``run/model``; ``hybrid_info``
    (what its backbone and starting weights are) is recorded and must agree on resume."""
    device = torch.device(device)
    if hybrid is not None and not hybrid.config.refiner:
        raise ValueError("hybrid must be a DA-Flow built with refiner=True (DAFlow.from_refiner)")
    model = init_refiner(init, seed=config.seed) if hybrid is None else hybrid
    model.to(device).train()
    params = [p for n, p in model.named_parameters() if not n.startswith("backbone.")]
    total = config.steps + 100

    def loss(module, batch, step: int, rank: int) -> torch.Tensor:
        if (
            config.coarse_prob
            and np.random.default_rng(step_seed(config.seed, step, rank, 23)).random() < config.coarse_prob
        ):
            batch = coarse_batch(batch)
        lq, dis = batch["lq"], batch["dis"]
        a, b = lq[:, 0], lq[:, 1]
        if hybrid is None:
            out = module(a, b, iters=config.iters, flow_init=dis_init(dis))
        else:
            rng = np.random.default_rng(step_seed(config.seed, step, rank, 17))
            seeds = [int(s) for s in rng.integers(0, 2**31 - 1, size=lq.shape[0])]
            out = module.raft(
                a, b, iters=config.iters, flow_init=dis_init(dis), **module.pair_features(a, b, seed=seeds)
            )
        return sequence_loss(
            out.flow_predictions, batch["flow"], batch["valid"], gamma=config.gamma, max_flow=config.max_flow
        )

    if hybrid is None:
        files = saved_as(model, "model", save_raft, lambda folder: load_raft(folder / WEIGHTS, small=True, convex=True))
    else:
        files = saved_daflow(model, with_backbone=True)
    stage = Stage(
        name="refine",
        module=model,
        params=params,
        loss=loss,
        dataset=MixturePairs(MixtureCache(cache), config.crop, config.seed),
        make_optimizer=lambda ps: torch.optim.AdamW(ps, lr=config.lr, weight_decay=config.weight_decay, eps=1e-8),
        lr=lambda step: one_cycle_lr(step, total, config.lr),
        **files,
        record={  # coarse_prob recorded only when used: a run without coarse steps keeps the record it always had
            **{k: v for k, v in dataclasses.asdict(config).items() if k != "coarse_prob" or v},
            "cache": str(cache),
            "init": str(init) if init else None,
            "hybrid": hybrid_info if hybrid is not None else None,
        },
        run_keys=RUN_KEYS,
    )
    summary = train_loop(stage, run, config, device=device, progress=progress, stop_at=stop_at)
    model.eval()
    return summary
