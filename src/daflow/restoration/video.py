"""``daflow restore``: a video (or frame folder) of any length restored into ``OUT`` by one of :data:`METHODS`.

- ``diffusion``: the lifted DiT4SR (:mod:`.diffusion`) in chunks of ``chunk`` frames that overlap by ``overlap``
  frames; the overlap frames of a chunk were restored by the chunk before and are its anchors. Motion guidance from
  the flows of ``flow_model`` estimated on the LQ input (``guidance`` > 0). With ``prefilter`` the temporal filter
  runs first (into ``OUT/.restore/prefiltered/``) and the restorer restores its frames.
- ``temporal``: the classical flow-guided temporal filter (:mod:`.temporal`), in windows of :data:`WINDOW` output
  frames read with ``radius`` frames of context on each side.

Resumable: after a chunk's (window's) frames are written, a marker (for ``diffusion`` the chunk's final latents,
the next chunk's anchors) goes to ``OUT/.restore/``; a rerun skips finished units and refuses an ``OUT`` restored
with other settings. Output: ``OUT/frames/<name>.png`` at the input size (``scale`` > 1 upsamples a truly
low-resolution input first, bicubic), ``OUT/restored.mp4`` when the input was a video, ``OUT/restore.json`` with
every setting.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from daflow.files import atomic_path, atomic_write_text, claim_run, write_image
from daflow.models.fidelity import ENSEMBLES
from daflow.models.sampler import DEFAULT_STEPS
from daflow.restoration.diffusion import ONE_STEP_SIGMA, SAMPLERS, chunk_plan, restore_chunk, uses_video_head
from daflow.restoration.guidance import GUIDANCE_SPACES
from daflow.restoration.temporal import TemporalSettings, filter_window

STATE = ".restore"
METHODS = ("diffusion", "temporal")
WINDOW = 8  # output frames of one temporal-filter window


@dataclass(frozen=True)
class RestoreSettings:
    """``method``: :data:`METHODS`. Diffusion: ``sampler`` (``one-step`` at ``sigma``, ``full`` over ``steps``, or
    ``auto``: one-step at the σ* the restorer was fine-tuned for when it was, else full; ``sigma`` None: that σ*, else
    :data:`~daflow.restoration.diffusion.ONE_STEP_SIGMA`), ``guidance`` weight w (0 = none) in ``space`` (``latent`` or
    ``image``), ``chunk``/``overlap``, ``fidelity`` (one-step: pass the output through the restorer's fidelity head
    when it has one, :mod:`daflow.models.fidelity`; ``ensemble``: its geometric self-ensemble of 1, 2, 4 or 8
    transforms, :func:`~daflow.models.fidelity.apply_head`; ``gate``: weight the diffusion output the head sees by the
    restorer's degradation gate when it has one, :mod:`daflow.models.gate`), ``prefilter`` (run the temporal
    filter first and restore its output). Temporal: ``radius``, ``strength``. ``flow_model``: any ``daflow evaluate``
    model name (guidance and temporal flows)."""

    method: str = "diffusion"
    sampler: str = "auto"
    sigma: float | None = None
    guidance: float = 0.05
    space: str = "latent"
    flow_model: str = "dis-raft"
    steps: int = DEFAULT_STEPS
    chunk: int = 3
    overlap: int = 1
    radius: int = 2
    strength: float = 32.0
    fidelity: bool = True
    gate: bool = True
    ensemble: int = 8
    prefilter: bool = True
    scale: int = 1
    seed: int = 0

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"--method must be one of {METHODS}, got {self.method!r}")
        if self.sampler not in SAMPLERS + ("auto",):
            raise ValueError(f"--sampler must be auto or one of {SAMPLERS}, got {self.sampler!r}")
        if self.sigma is not None and not 0 < self.sigma <= 1:
            raise ValueError(f"--sigma must lie in (0, 1], got {self.sigma}")
        if self.guidance < 0:
            raise ValueError(f"--guidance must be >= 0 (0 = off), got {self.guidance}")
        if self.space not in GUIDANCE_SPACES:
            raise ValueError(f"--guidance-space must be one of {GUIDANCE_SPACES}, got {self.space!r}")
        if self.chunk < 2:
            raise ValueError(f"--chunk must be >= 2 frames, got {self.chunk}")
        if not 0 <= self.overlap < self.chunk:
            raise ValueError(f"--overlap must lie in 0..{self.chunk - 1} (below --chunk), got {self.overlap}")
        if self.scale not in (1, 2, 4):
            raise ValueError(f"--scale must be 1, 2 or 4, got {self.scale}")
        if self.steps < 1:
            raise ValueError(f"--steps must be >= 1, got {self.steps}")
        if self.ensemble not in ENSEMBLES:
            raise ValueError(f"--ensemble must be one of {ENSEMBLES}, got {self.ensemble}")
        self.temporal()  # validates radius and strength

    def temporal(self) -> TemporalSettings:
        return TemporalSettings(radius=self.radius, strength=self.strength)

    def resolved(self, backbone) -> RestoreSettings:
        """The settings with ``sampler`` and ``sigma`` made explicit for ``backbone`` (see the class docstring)."""
        if self.method != "diffusion":
            return self
        trained = getattr(backbone, "one_step_sigma", None)
        sampler = self.sampler if self.sampler != "auto" else ("one-step" if trained else "full")
        sigma = self.sigma if self.sigma is not None else (trained or ONE_STEP_SIGMA)
        return dataclasses.replace(self, sampler=sampler, sigma=sigma)

    @property
    def needs_flow(self) -> bool:
        return self.method == "temporal" or self.prefilter or self.guidance > 0


@dataclass
class RestoreReport:
    frames: int
    chunks: int
    skipped: int
    seconds: float


def _upscale(frames: np.ndarray, scale: int) -> np.ndarray:
    if scale == 1:
        return frames
    return np.stack(
        [cv2.resize(f, (f.shape[1] * scale, f.shape[0] * scale), interpolation=cv2.INTER_CUBIC) for f in frames]
    )


def _diffusion_units(backbone, source, out: Path, settings: RestoreSettings, estimator, bar) -> tuple[int, int]:
    from safetensors.torch import load_file, save_file

    names, state, n = source.frame_names(), out / STATE, len(source)
    plan = chunk_plan(n, settings.chunk, settings.overlap)
    video_head = uses_video_head(backbone, settings)  # it also sees the frames around the chunk
    previous: tuple[int, torch.Tensor] | None = None  # (start, final latents) of the last chunk
    skipped = 0
    for start, count, n_anchor in bar(plan):
        path = state / f"chunk_{start:06d}.safetensors"
        if path.is_file():
            previous = (start, load_file(str(path))["latents"])
            skipped += 1
            continue
        anchors = None
        if n_anchor:
            p_start, p_latents = previous
            anchors = p_latents[start - p_start : start - p_start + n_anchor]
        frames = _upscale(source.read(start, count), settings.scale)
        context = (None, None)
        if video_head:
            before = _upscale(source.read(start - 1, 1), settings.scale)[0] if start > 0 else None
            after = _upscale(source.read(start + count, 1), settings.scale)[0] if start + count < n else None
            context = (before, after)
        latents, images = restore_chunk(
            backbone,
            frames,
            settings,
            flow_estimator=estimator,
            anchors=anchors,
            seed=settings.seed + start,
            context=context,
        )
        for k, image in enumerate(images):
            write_image(out / "frames" / f"{names[start + n_anchor + k]}.png", image)
        with atomic_path(path) as tmp:
            save_file({"latents": latents.detach().cpu().contiguous()}, str(tmp))
        previous = (start, latents.detach().cpu())
    return len(plan), skipped


def _temporal_units(source, out: Path, settings: RestoreSettings, estimator, bar) -> tuple[int, int]:
    names, state, n, r = source.frame_names(), out / STATE, len(source), settings.radius
    starts = list(range(0, n, WINDOW))
    skipped = 0
    for start in bar(starts):
        marker = state / f"window_{start:06d}.done"
        if marker.is_file():
            skipped += 1
            continue
        lo, hi = max(0, start - r), min(n, start + WINDOW + r)
        frames = _upscale(source.read(lo, hi - lo), settings.scale)
        targets = range(start - lo, min(n, start + WINDOW) - lo)
        for k, image in zip(targets, filter_window(frames, estimator, settings.temporal(), targets=targets)):
            write_image(out / "frames" / f"{names[lo + k]}.png", image)
        atomic_write_text(marker, "")
    return len(starts), skipped


def restore_video(
    backbone,
    source,
    out: str | Path,
    settings: RestoreSettings,
    *,
    flow_estimator=None,
    progress: bool = True,
    record: dict | None = None,
) -> RestoreReport:
    """Restore every frame of ``source`` (a :class:`~daflow.data.video.FrameSource`) into ``out`` (module docstring).
    ``backbone``: the diffusion backbone (unused by ``temporal``); ``flow_estimator``: a ClipEstimator for the
    flows (required when ``settings.needs_flow``; ``temporal`` needs a pairwise one)."""
    from tqdm import tqdm

    settings = settings.resolved(backbone)
    if (settings.needs_flow or uses_video_head(backbone, settings)) and flow_estimator is None:
        raise ValueError(
            f"--method {settings.method} (prefilter {settings.prefilter}, guidance {settings.guidance}, fidelity "
            f"{settings.fidelity}) needs a flow model (--flow-model): the temporal filter, the guidance and the "
            "restorer's video fidelity head use its flow"
        )
    out = Path(out)
    state = out / STATE
    wanted = {"settings": dataclasses.asdict(settings), "input": str(source.path), "frames": len(source)}
    claim_run(state / "settings.json", wanted, what="a restore")
    t0 = time.perf_counter()
    unit = "chunk" if settings.method == "diffusion" else "window"

    def bar(items):
        return tqdm(items, desc="restore", unit=unit, disable=not progress)

    if settings.method == "temporal":
        units, skipped = _temporal_units(source, out, settings, flow_estimator, bar)
    else:
        given = source
        if settings.prefilter:  # the temporal filter's frames (kept in the state folder) are the restorer's input
            from daflow.data.video import FrameSource

            pre = state / "prefiltered"
            _temporal_units(source, pre, dataclasses.replace(settings, scale=1), flow_estimator, bar)
            given = FrameSource(pre / "frames")
        units, skipped = _diffusion_units(backbone, given, out, settings, flow_estimator, bar)
    if source.files is None:  # the input was a video: the output is one too
        from daflow.data.video import FrameSource, write_video

        frames = FrameSource(out / "frames")
        video = frames.read(0, len(frames))
        if video.shape[1] % 2 or video.shape[2] % 2:
            video = video[:, : video.shape[1] // 2 * 2, : video.shape[2] // 2 * 2]
        write_video(out / "restored.mp4", video)
    seconds = time.perf_counter() - t0
    atomic_write_text(
        out / "restore.json",
        json.dumps(
            {**wanted, **(record or {}), "seconds": seconds, "chunks": units, "skipped_chunks": skipped}, indent=2
        ),
    )
    return RestoreReport(frames=len(source), chunks=units, skipped=skipped, seconds=seconds)
