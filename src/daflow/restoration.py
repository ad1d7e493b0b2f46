"""Flow-guided video restoration with the lifted DiT4SR (paper App. C.4): ``daflow restore``.

A video (or frame folder) of any length is restored in chunks of ``chunk`` frames that overlap by ``overlap``
frames. Each chunk is one run of the lifted DiT4SR's sampler over all its frames at once (full spatio-temporal
attention, §4.2), with MGLD-style motion guidance (:mod:`daflow.models.guidance`) from the flows of a chosen model
estimated on the LQ input. The overlap frames of a chunk were restored by the chunk before: they are anchors (their
final latents are kept), so the guidance pulls the new frames towards them and chunks join without a seam.

Resumable: after a chunk's new frames are written, its final latents go to ``OUT/.restore/chunk_<start>.safetensors``;
a rerun skips finished chunks (reading their latents back as anchors) and refuses an ``OUT`` restored with other
settings. Output: ``OUT/frames/<name>.png`` at the input size (``scale`` > 1 upsamples a truly low-resolution input
first, bicubic), ``OUT/restored.mp4`` when the input was a video, ``OUT/restore.json`` with every setting.
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

from daflow.files import atomic_path, atomic_write_text, write_image
from daflow.models.guidance import GUIDANCE_SPACES, MotionGuidance, PairFlows
from daflow.models.sampler import DEFAULT_SHIFT, DEFAULT_STEPS, make_schedule

STATE = ".restore"


@dataclass(frozen=True)
class RestoreSettings:
    """``guidance``: the weight w (0 = per-frame restoration, no flow); ``space``: ``latent`` or ``image``;
    ``flow_model``: any ``daflow evaluate`` model name (``daflow``/``daflow-tiny`` for DA-Flow)."""

    guidance: float = 0.5
    space: str = "latent"
    flow_model: str = "dis-raft"
    steps: int = DEFAULT_STEPS
    chunk: int = 3
    overlap: int = 1
    scale: int = 1
    seed: int = 0

    def __post_init__(self):
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


def chunk_plan(n: int, chunk: int, overlap: int) -> list[tuple[int, int, int]]:
    """``(start, count, anchors)`` of every chunk of an ``n``-frame video: frames ``start … start+count−1``, of
    which the first ``anchors`` were restored by earlier chunks."""
    if n <= chunk:
        return [(0, n, 0)]
    plan, start, done = [], 0, 0
    while done < n:
        start = min(start, n - chunk)
        plan.append((start, chunk, done - start))
        done = start + chunk
        start = done - overlap
    return plan


def restore_clip(
    backbone,
    frames: np.ndarray,
    *,
    guidance: MotionGuidance | None = None,
    steps: int = DEFAULT_STEPS,
    shift: float = DEFAULT_SHIFT,
    seed: int = 0,
    anchors: torch.Tensor | None = None,
) -> torch.Tensor:
    """Restore ``frames`` ``[F, H, W, 3]`` uint8 (sides multiples of 16) → final latents ``[F, 16, H/8, W/8]``.

    ``anchors`` ``[A, 16, h, w]``: known final latents of the first A frames (see the module docstring)."""
    device = backbone.device
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()[None]
    lq = backbone.encode_lq(x)
    f = len(frames)
    noise = torch.randn(lq.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float32).to(device)
    frozen = torch.zeros(f, dtype=torch.bool, device=device)
    if anchors is not None and len(anchors):
        frozen[: len(anchors)] = True
        anchors = anchors.to(device=device, dtype=torch.float32)
    transformer = backbone.transformer
    dtype = next(transformer.parameters()).dtype
    text, pooled = backbone.prompt.batch(1, device=device, dtype=dtype)
    schedule = make_schedule(steps, shift=shift)
    z = noise
    for i in range(len(schedule)):
        sigma, sigma_next = float(schedule.sigmas[i]), float(schedule.sigmas[i + 1])
        t = torch.full((1,), float(schedule.timesteps[i]), device=device, dtype=dtype)
        with torch.no_grad():
            v = transformer(z.to(dtype), lq.to(dtype), text, pooled, t, num_frames=f).float()
        z0, eps = z - sigma * v, z + (1 - sigma) * v
        if anchors is not None and len(anchors):
            z0 = torch.cat([anchors, z0[len(anchors) :]])
        if guidance is not None:
            z0, _ = guidance(z0, frozen)
        z = (1 - sigma_next) * z0 + sigma_next * eps
    return z


def _pad16(frames: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    h, w = frames.shape[1:3]
    ph, pw = (-h) % 16, (-w) % 16
    if ph or pw:
        frames = np.pad(frames, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")
    return frames, (h, w)


def clip_flows(estimator, frames: np.ndarray, device) -> PairFlows:
    """Forward and backward flows ``[F−1, 2, H, W]`` of every consecutive pair of ``frames`` by a ClipEstimator."""
    from daflow.inference import clip_pair_flows

    return PairFlows(*clip_pair_flows(estimator, frames, device=device, backward=True))


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
    ``flow_estimator``: a ClipEstimator for the guidance flows (required when ``settings.guidance > 0``)."""
    from safetensors.torch import load_file, save_file
    from tqdm import tqdm

    from daflow.models.vae import decode

    if settings.guidance > 0 and flow_estimator is None:
        raise ValueError("guidance > 0 needs a flow model (--flow-model)")
    out = Path(out)
    state = out / STATE
    wanted = {"settings": dataclasses.asdict(settings), "input": str(source.path), "frames": len(source)}
    info = state / "settings.json"
    if info.is_file() and json.loads(info.read_text()) != wanted:
        raise ValueError(
            f"{out} holds a restore made with other settings or input ({info}); use another -o or delete it"
        )
    state.mkdir(parents=True, exist_ok=True)
    atomic_write_text(info, json.dumps(wanted, indent=2))
    names = source.frame_names()
    plan = chunk_plan(len(source), settings.chunk, settings.overlap)
    t0 = time.perf_counter()
    previous: tuple[int, torch.Tensor] | None = None  # (start, final latents) of the last chunk
    skipped = 0
    bar = tqdm(plan, desc="restore", unit="chunk", disable=not progress)
    for start, count, n_anchor in bar:
        path = state / f"chunk_{start:06d}.safetensors"
        if path.is_file():
            previous = (start, load_file(str(path))["latents"])
            skipped += 1
            continue
        frames, (h, w) = _pad16(_upscale(source.read(start, count), settings.scale))
        anchors = None
        if n_anchor:
            p_start, p_latents = previous
            anchors = p_latents[start - p_start : start - p_start + n_anchor]
        guidance = None
        if settings.guidance > 0:
            flows = clip_flows(flow_estimator, frames[:, :h, :w], backbone.device)
            pad = (0, frames.shape[2] - w, 0, frames.shape[1] - h)
            flows = PairFlows(
                torch.nn.functional.pad(flows.fw, pad, mode="replicate"),
                torch.nn.functional.pad(flows.bw, pad, mode="replicate"),
            )
            guidance = MotionGuidance(
                flows.resized(frames.shape[1:3]),
                settings.guidance,
                space=settings.space,
                vae=backbone.vae,
                latent_size=(frames.shape[1] // 8, frames.shape[2] // 8),
            )
        latents = restore_clip(
            backbone, frames, guidance=guidance, steps=settings.steps, seed=settings.seed + start, anchors=anchors
        )
        with torch.no_grad():
            images = decode(backbone.vae, latents[n_anchor:]).round().byte().permute(0, 2, 3, 1).cpu().numpy()
        for k, image in enumerate(images[:, :h, :w]):
            write_image(out / "frames" / f"{names[start + n_anchor + k]}.png", image)
        with atomic_path(path) as tmp:
            save_file({"latents": latents.detach().cpu().contiguous()}, str(tmp))
        previous = (start, latents.detach().cpu())
    bar.close()
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
            {**wanted, **(record or {}), "seconds": seconds, "chunks": len(plan), "skipped_chunks": skipped}, indent=2
        ),
    )
    return RestoreReport(frames=len(source), chunks=len(plan), skipped=skipped, seconds=seconds)
