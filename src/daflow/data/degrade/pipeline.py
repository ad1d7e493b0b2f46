"""``degrade_clip``: the RealBasicVSR / Real-ESRGAN second-order pipeline applied to a clip
(``docs/degradations.md``).

Order: [USM on HQ] → stage 1 (blur → resize → noise → clamp → JPEG → [video]) → stage 2 ([blur] → resize →
noise → [JPEG]) → final group in the sampled order, either {resize to the LQ size + [sinc]} then
{clamp + compression}, or the reverse → round to 8 bit → [bicubic back to exactly H × W].
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from daflow.data.degrade import ops
from daflow.data.degrade.params import DegradationParams, FrameParams

_STAGE_NOISE = {"s1": 1, "s2": 2}


def check_clip(frames) -> np.ndarray:
    """Validate a clip: uint8 RGB ``[F, H, W, 3]`` with F >= 1 (a clear error otherwise)."""
    if isinstance(frames, (list, tuple)):
        if not frames:
            raise ValueError("empty clip: no frames to degrade")
        shapes = {np.asarray(f).shape for f in frames}
        if len(shapes) > 1:
            raise ValueError(f"frames of a clip must have one size, got {sorted(shapes)}")
        frames = np.stack([np.asarray(f) for f in frames])
    frames = np.asarray(frames)
    if frames.ndim == 4 and frames.shape[0] == 0:
        raise ValueError("empty clip: no frames to degrade")
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {frames.dtype}")
    if frames.ndim != 4 or frames.shape[-1] != 3:
        what = (
            "grayscale"
            if frames.ndim == 3 or (frames.ndim == 4 and frames.shape[-1] == 1)
            else ("RGBA" if frames.ndim == 4 and frames.shape[-1] == 4 else f"shape {frames.shape}")
        )
        raise ValueError(f"frames must be RGB [F, H, W, 3], got {what}")
    return frames


class _Timer:
    def __init__(self, timings: dict[str, float] | None):
        self.timings = timings

    def run(self, name: str, fn: Callable, *args):
        if self.timings is None:
            return fn(*args)
        t = time.perf_counter()
        out = fn(*args)
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t
        return out


def _run(
    x: list[np.ndarray], ps: list[FrameParams], idx: list[int], params: DegradationParams, timer: _Timer
) -> list[np.ndarray]:
    """Degrade frames ``x`` (float32) that share one codec stream."""

    def each(name: str, fn: Callable) -> None:
        for i in range(len(x)):
            x[i] = timer.run(name, fn, i)

    def rng(i: int, stage: str) -> np.random.Generator:
        return np.random.default_rng([params.noise_seed, idx[i], _STAGE_NOISE[stage]])

    if params.usm:
        each("usm", lambda i: ops.usm_sharpen(x[i]))
    # stage 1
    each("blur", lambda i: ops.blur(x[i], ps[i].s1_blur) if ps[i].s1_blur else x[i])
    each("resize", lambda i: ops.resize(x[i], ps[i].s1_size, ps[i].s1_interp))
    each("noise", lambda i: np.clip(ops.add_noise(x[i], ps[i].s1_noise, rng(i, "s1")), 0, 1))
    each("jpeg", lambda i: ops.jpeg(x[i], ps[i].s1_jpeg) if ps[i].s1_jpeg is not None else x[i])
    if ps[0].s1_codec is not None:
        x[:] = timer.run("video", ops.video_compress, x, ps[0].s1_codec)
    # stage 2
    each("blur", lambda i: ops.blur(x[i], ps[i].s2_blur) if ps[i].s2_blur else x[i])
    each("resize", lambda i: ops.resize(x[i], ps[i].s2_size, ps[i].s2_interp))
    each("noise", lambda i: ops.add_noise(x[i], ps[i].s2_noise, rng(i, "s2")))
    each("jpeg", lambda i: ops.jpeg(x[i], ps[i].s2_jpeg) if ps[i].s2_jpeg is not None else x[i])

    # final group
    def resize_and_sinc() -> None:
        each("resize", lambda i: ops.resize(x[i], params.lq_size, ps[i].final_interp))
        each("blur", lambda i: ops.blur(x[i], ps[i].final_sinc) if ps[i].final_sinc else x[i])

    def compress() -> None:
        each("clamp", lambda i: np.clip(x[i], 0, 1))
        each("jpeg", lambda i: ops.jpeg(x[i], ps[i].final_jpeg) if ps[i].final_jpeg is not None else x[i])
        if ps[0].final_codec is not None:
            x[:] = timer.run("video", ops.video_compress, x, ps[0].final_codec)

    if ps[0].final_order == "resize_first":
        resize_and_sinc()
        compress()
    else:
        compress()
        resize_and_sinc()
    return x


def degrade_clip(frames, params: DegradationParams, *, timings: dict[str, float] | None = None) -> np.ndarray:
    """Degrade a clip; a pure function of ``frames`` and ``params``.

    Args:
        frames: uint8 RGB ``[F, H, W, 3]`` (or a list of ``[H, W, 3]``) with ``F == params.num_frames`` and
            ``(H, W) == params.hq_size``.
        params: from :func:`~daflow.data.degrade.params.sample_params` or a manifest.
        timings: if given, seconds spent per step are added to it (for benchmarks).

    Returns:
        uint8 RGB ``[F, H, W, 3]`` at the HQ size (``upsample_back``) or ``[F, h, w, 3]`` at the LQ size.
    """
    frames = check_clip(frames)
    n, h, w, _ = frames.shape
    if n != params.num_frames:
        raise ValueError(f"params were sampled for {params.num_frames} frames, the clip has {n}")
    if (h, w) != tuple(params.hq_size):
        raise ValueError(
            f"params were sampled for frames of {params.hq_size[1]}x{params.hq_size[0]}, the clip is {w}x{h}"
        )
    timer = _Timer(timings)
    x = [f.astype(np.float32) / 255.0 for f in frames]
    if params.codec_scope == "clip":
        out = _run(x, list(params.frames), list(range(n)), params, timer)
    else:
        out = [_run([x[i]], [params.frames[i]], [i], params, timer)[0] for i in range(n)]
    lq = np.stack([ops.to_uint8(f) for f in out])
    if not params.upsample_back:
        return lq
    back = [timer.run("upsample", ops.resize, f.astype(np.float32), (h, w), "bicubic") for f in lq]
    return np.stack([np.clip(np.rint(f), 0, 255).astype(np.uint8) for f in back])
