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

    def run(self, name: str, fn: Callable, *args, **kwargs):
        if self.timings is None:
            return fn(*args, **kwargs)
        t = time.perf_counter()
        out = fn(*args, **kwargs)
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t
        return out


# The clip is degraded in segments: per-frame stages (independent per frame, any order or process gives the same
# bytes: each frame's noise has its own seed) separated by the whole-clip codec passes (serial):
#   "stage1": [USM] → blur → resize → noise → clamp → JPEG               (then the stage-1 codec, if any)
#   "stage2": [blur] → resize → noise → [JPEG] → the final group up to its codec: resize + [sinc] + clamp + [JPEG]
#             (resize first) or clamp + [JPEG] (compression first)      (then the final codec, if any)
#   "tail":   the rest of the final group (resize + [sinc] when compression came first) → 8 bit → [bicubic back]
SEGMENTS = ("stage1", "stage2", "tail")


def _frame_segment(
    segment: str, x: np.ndarray, p: FrameParams, i: int, params: DegradationParams, timed: bool
) -> tuple[np.ndarray, dict[str, float] | None]:
    """One per-frame segment (above) of frame ``i``: float32 ``[h, w, 3]`` in 0..1 → its output (uint8 after
    ``"tail"``), and the seconds per step when ``timed``."""
    timer = _Timer({} if timed else None)

    def rng(stage: str) -> np.random.Generator:
        return np.random.default_rng([params.noise_seed, i, _STAGE_NOISE[stage]])

    def resize_and_sinc(x):
        x = timer.run("resize", ops.resize, x, params.lq_size, p.final_interp)
        return timer.run("blur", ops.blur, x, p.final_sinc) if p.final_sinc else x

    def compress(x):
        x = timer.run("clamp", np.clip, x, 0, 1)
        return timer.run("jpeg", ops.jpeg, x, p.final_jpeg) if p.final_jpeg is not None else x

    if segment == "stage1":
        if params.usm:
            x = timer.run("usm", ops.usm_sharpen, x)
        if p.s1_blur:
            x = timer.run("blur", ops.blur, x, p.s1_blur)
        x = timer.run("resize", ops.resize, x, p.s1_size, p.s1_interp)
        x = timer.run("noise", lambda v: np.clip(ops.add_noise(v, p.s1_noise, rng("s1")), 0, 1), x)
        if p.s1_jpeg is not None:
            x = timer.run("jpeg", ops.jpeg, x, p.s1_jpeg)
    elif segment == "stage2":
        if p.s2_blur:
            x = timer.run("blur", ops.blur, x, p.s2_blur)
        x = timer.run("resize", ops.resize, x, p.s2_size, p.s2_interp)
        x = timer.run("noise", ops.add_noise, x, p.s2_noise, rng("s2"))
        if p.s2_jpeg is not None:
            x = timer.run("jpeg", ops.jpeg, x, p.s2_jpeg)
        x = compress(resize_and_sinc(x)) if p.final_order == "resize_first" else compress(x)
    elif segment == "tail":
        if p.final_order != "resize_first":
            x = resize_and_sinc(x)
        x = ops.to_uint8(x)
        if params.upsample_back:
            h, w = params.hq_size
            x = timer.run("upsample", ops.resize, x.astype(np.float32), (h, w), "bicubic")
            x = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    else:
        raise ValueError(f"unknown segment {segment!r}; expected one of {SEGMENTS}")
    return x, timer.timings


def init_worker() -> None:
    """A degradation worker process (a clip pool of ``daflow degrade``, or :func:`degrade_clip`'s frame ``pool``):
    OpenCV single-threaded (the processes are the parallelism). It lives here so that frame workers import only this
    light module."""
    import cv2

    cv2.setNumThreads(1)


def _segment_task(args) -> tuple[np.ndarray, dict[str, float] | None]:
    segment, x, p, i, params, timed, quantize = args
    if x.dtype == np.uint8:  # 8-bit input (the clip, or a codec's output): a quarter of the bytes to send
        x = x.astype(np.float32) / 255.0
    out, timings = _frame_segment(segment, x, p, i, params, timed)
    # a frame headed for a codec pass: its 8-bit values are all the codec reads (ops.video_compress)
    return (ops.to_uint8(out) if quantize and out.dtype != np.uint8 else out), timings


def _add(timings: dict[str, float] | None, part: dict[str, float] | None) -> None:
    if timings is not None and part:
        for k, v in part.items():
            timings[k] = timings.get(k, 0.0) + v


def degrade_clip(
    frames, params: DegradationParams, *, timings: dict[str, float] | None = None, pool=None
) -> np.ndarray:
    """Degrade a clip; a pure function of ``frames`` and ``params``.

    Args:
        frames: uint8 RGB ``[F, H, W, 3]`` (or a list of ``[H, W, 3]``) with ``F == params.num_frames`` and
            ``(H, W) == params.hq_size``.
        params: from :func:`~daflow.data.degrade.params.sample_params` or a manifest.
        timings: if given, seconds spent per step are added to it (for benchmarks).
        pool: something with an order-keeping ``map(fn, iterable)`` (a ``multiprocessing`` pool): the per-frame
            segments run there, the codec passes here; the bytes are those of ``pool=None``.

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
    timed = timings is not None
    streams = [list(range(n))] if params.codec_scope == "clip" else [[i] for i in range(n)]
    x = list(frames)  # uint8: converted to float32 by the first segment
    for segment in SEGMENTS:
        name = {"stage1": "s1_codec", "stage2": "final_codec"}.get(segment)
        codecs = [(stream, getattr(params.frames[stream[0]], name) if name else None) for stream in streams]
        coded = {i for stream, c in codecs if c is not None for i in stream}
        # with worker processes, frames headed for a codec travel as 8 bits (what the codec reads anyway)
        tasks = [(segment, x[i], params.frames[i], i, params, timed, pool is not None and i in coded) for i in range(n)]
        if pool is not None and len(codecs) == 1 and codecs[0][1] is not None:
            # one stream for the clip: encode each frame as soon as its stage is done, while workers do later ones

            def finished(results):
                for frame, part in results:
                    _add(timings, part)
                    yield frame

            x = timer.run(
                "video", ops.video_compress, finished(pool.imap(_segment_task, tasks)), codecs[0][1], as_uint8=True
            )
            continue
        results = list(map(_segment_task, tasks) if pool is None else pool.map(_segment_task, tasks))
        x = [r[0] for r in results]
        for r in results:
            _add(timings, r[1])
        for stream, c in codecs:  # the whole-clip codec passes (one stream per clip, or per frame): serial
            if c is not None:
                out = timer.run("video", ops.video_compress, [x[i] for i in stream], c, as_uint8=pool is not None)
                for i, f in zip(stream, out):
                    x[i] = f
    return np.stack(x)
