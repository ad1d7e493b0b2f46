"""Training clips that look like use: mixed sizes, motions, textures and degradations, with DIS run on
the degraded frames as the initial flow a refiner starts from.

Each clip ``i`` of a mixture is drawn from ``SeedSequence([seed, i])``:

- **size** from :data:`MIX_SIZES` (256×256 to 384×512, landscape and square);
- **motion**: camera pan / rotation / zoom and 0–5 independent objects (occluding each other), with the largest
  speed log-uniform from sub-pixel to ``motion_max`` of the frame width per frame (1/8 by default); a fraction
  ``static_prob`` of clips does not move at all (a static scene must stay static);
- **textures**: every photograph the installed packages ship (``photos="all"`` of
  :mod:`daflow.data.synthetic`) and procedural textures;
- **degradation**: a preset drawn from :data:`DEGRADE_MIX` (RealBasicVSR's pipeline, mild, severe, real-codec
  strength at 300–6,000 bits a frame, or none).

:func:`render_mixture_clip` returns the LQ frames, the exact forward flow and DIS on every LQ pair;
:func:`build_cache` writes ``n`` of them as ``.npz`` files (resumable, ``workers`` processes) for the trainer of
:mod:`daflow.train.refine`, which reads them with :class:`MixtureCache`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from daflow.data.synthetic import SyntheticConfig, render_clip
from daflow.files import atomic_path, claim_run

MIX_SIZES: tuple[tuple[int, int], ...] = ((256, 256), (256, 320), (288, 384), (320, 448), (384, 512), (352, 352))
DEGRADE_MIX: tuple[tuple[str | None, float], ...] = (
    ("realbasicvsr", 0.3),
    ("mild", 0.2),
    ("severe", 0.15),
    ("codec", 0.25),
    (None, 0.1),
)


@dataclass(frozen=True)
class MixtureConfig:
    """Ranges of the mixture (see the module docstring)."""

    sizes: tuple[tuple[int, int], ...] = MIX_SIZES
    num_frames: int = 3
    motion_min: float = 0.002  # smallest "largest speed", as a fraction of the width per frame
    motion_max: float = 0.125  # largest, as a fraction of the width per frame (1/8)
    static_prob: float = 0.08
    degrade: tuple[tuple[str | None, float], ...] = DEGRADE_MIX

    def __post_init__(self) -> None:
        if not self.sizes or any(min(s) < 64 for s in self.sizes):
            raise ValueError(f"sizes must be (H, W) pairs of at least 64, got {self.sizes}")
        if not 0 < self.motion_min <= self.motion_max:
            raise ValueError(f"need 0 < motion_min <= motion_max, got {self.motion_min}, {self.motion_max}")
        if abs(sum(p for _, p in self.degrade) - 1.0) > 1e-6:
            raise ValueError(f"degrade probabilities must sum to 1, got {self.degrade}")


MIXTURE_PRESETS = {
    "default": MixtureConfig(),
    "tiny": MixtureConfig(sizes=((96, 128), (128, 128)), num_frames=3),
}


def sample_scene(config: MixtureConfig, rng: np.random.Generator) -> tuple[SyntheticConfig, str | None, dict]:
    """The scene settings, degradation preset and a description of one clip."""
    h, w = config.sizes[int(rng.integers(len(config.sizes)))]
    static = bool(rng.random() < config.static_prob)
    lo, hi = np.log(config.motion_min * w), np.log(config.motion_max * w)
    camera = 0.0 if static else float(np.exp(rng.uniform(lo, hi)))
    objects = 0.0 if static else float(np.exp(rng.uniform(lo, hi)))
    spin = 0.0 if static else float(rng.uniform(0, 1))
    scene = SyntheticConfig(
        height=h,
        width=w,
        num_frames=config.num_frames,
        num_objects=(0, 5),
        object_radius=(0.08, 0.3),
        object_speed=objects,
        object_accel=0.1 * objects,
        object_rotation=6.0 * spin,
        object_zoom=0.06 * spin,
        camera_speed=camera,
        camera_rotation=3.0 * spin * float(rng.random()),
        camera_zoom=0.05 * spin * float(rng.random()),
        photos="all",
        texture_blur=float(rng.uniform(0.3, 1.2)),
    )
    names = [name for name, _ in config.degrade]
    preset = names[int(rng.choice(len(names), p=[p for _, p in config.degrade]))]
    return (
        scene,
        preset,
        {"size": [h, w], "static": static, "camera_speed": camera, "object_speed": objects, "degrade": preset},
    )


def render_mixture_clip(config: MixtureConfig, seed: int) -> dict:
    """One clip: ``lq`` ``[F, H, W, 3]`` uint8, ``flow`` ``[F−1, H, W, 2]`` float32 (exact), ``dis`` (same shape,
    DIS medium on the LQ pairs), ``meta``."""
    from daflow.data.degrade import degrade_clip, sample_params
    from daflow.models.classical import classical_flow

    rng = np.random.default_rng(np.random.SeedSequence([seed, 11]))
    scene, preset, meta = sample_scene(config, rng)
    clip = render_clip(scene, int(rng.integers(2**31 - 1)))
    lq = clip.frames
    if preset is not None:
        lq = degrade_clip(clip.frames, sample_params(preset, len(lq), lq.shape[1:3], int(rng.integers(2**31 - 1))))
    dis = np.stack([classical_flow(lq[k], lq[k + 1], "dis") for k in range(len(lq) - 1)])
    return {"lq": lq, "flow": clip.flow, "dis": dis, "meta": meta}


def clip_seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def _write_one(args) -> None:
    folder, config, seed, index = args
    path = Path(folder) / f"{index:06d}.npz"
    if path.is_file():
        return
    clip = render_mixture_clip(config, clip_seed(seed, index))
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, lq=clip["lq"], flow=clip["flow"], dis=clip["dis"], meta=json.dumps(clip["meta"]))


def build_cache(
    folder: str | Path,
    n: int,
    *,
    config: MixtureConfig | str = "default",
    seed: int = 0,
    workers: int = 1,
    progress: bool = True,
) -> Path:
    """Write clips ``0 … n−1`` of the mixture into ``folder`` (skipping those already there: resumable)."""
    from tqdm import tqdm

    config = MIXTURE_PRESETS[config] if isinstance(config, str) else config
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    record = {"n": n, "seed": seed, "config": dataclasses.asdict(config)}
    claim_run(folder / "mixture.json", record, keys=("seed", "config"), what="a mixture")
    jobs = [(str(folder), config, seed, i) for i in range(n) if not (folder / f"{i:06d}.npz").is_file()]
    bar = tqdm(total=len(jobs), desc="mixture clips", disable=not progress)
    if workers <= 1:
        for job in jobs:
            _write_one(job)
            bar.update()
    else:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers, initializer=_single_thread) as pool:
            for _ in pool.imap_unordered(_write_one, jobs, chunksize=4):
                bar.update()
    bar.close()
    return folder


def _single_thread() -> None:
    import cv2

    cv2.setNumThreads(1)
    os.environ["OMP_NUM_THREADS"] = "1"


class MixtureCache:
    """The clips of a :func:`build_cache` folder, as a sequence of dicts (``lq``, ``flow``, ``dis``, ``meta``)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.files = sorted(self.folder.glob("[0-9]*.npz"))
        if not self.files:
            raise FileNotFoundError(f"{self.folder}: no mixture clips (*.npz); build them with build_cache first")

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict:
        with np.load(self.files[index]) as z:
            return {"lq": z["lq"], "flow": z["flow"], "dis": z["dis"], "meta": json.loads(str(z["meta"]))}
