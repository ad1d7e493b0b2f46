"""The individual degradation operations. Images are float32 RGB ``[H, W, 3]`` in [0, 1] (values may leave
the range between steps, as in Real-ESRGAN); every op is a pure function of its arguments.

Alignment rule (``docs/degradations.md``): every resize is ``cv2.resize`` with an explicit output
size (full-extent mapping), every kernel is odd and centred, and the codec pads odd sizes with replicated
pixels instead of cropping, so content never moves.
"""

from __future__ import annotations

import io
import itertools
import math
from fractions import Fraction

import cv2
import numpy as np

from daflow.data.degrade.kernels import make_kernel
from daflow.data.degrade.params import BlurParams, CodecParams, NoiseParams

_INTERP = {"area": cv2.INTER_AREA, "bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}
_USM_KERNEL = 51


def usm_sharpen(img: np.ndarray, weight: float = 0.5, threshold: float = 10.0) -> np.ndarray:
    """Real-ESRGAN's unsharp masking of the HQ (kernel 51, σ = 8, weight 0.5, threshold 10/255, soft mask)."""
    blur = cv2.GaussianBlur(img, (_USM_KERNEL, _USM_KERNEL), 0)
    residual = img - blur
    mask = (np.abs(residual) * 255 > threshold).astype(np.float32)
    soft = cv2.GaussianBlur(mask, (_USM_KERNEL, _USM_KERNEL), 0)
    sharp = np.clip(img + weight * residual, 0, 1)
    return soft * sharp + (1 - soft) * img


def blur(img: np.ndarray, p: BlurParams) -> np.ndarray:
    kernel = make_kernel(p.family, p.size, p.sigma_x, p.sigma_y, p.theta, p.beta, p.omega)
    return cv2.filter2D(img, -1, kernel, borderType=cv2.BORDER_REFLECT_101)


def resize(img: np.ndarray, size: tuple[int, int], interp: str) -> np.ndarray:
    """Resize to exactly ``size = (H, W)``."""
    h, w = size
    if img.shape[:2] == (h, w):
        return img
    return cv2.resize(img, (w, h), interpolation=_INTERP[interp])


def add_noise(img: np.ndarray, p: NoiseParams, rng: np.random.Generator) -> np.ndarray:
    """Gaussian (σ on the 0..255 scale) or Poisson noise, colour or grey (one map for all channels)."""
    h, w, _ = img.shape
    if p.kind == "gaussian":
        shape = (h, w, 1) if p.gray else (h, w, 3)
        return img + (rng.standard_normal(shape, dtype=np.float32) * np.float32(p.strength / 255.0))
    if p.kind != "poisson":
        raise ValueError(f"unknown noise kind {p.kind!r}")
    src = img @ np.array([0.299, 0.587, 0.114], np.float32) if p.gray else img
    q = np.clip(np.rint(src * 255.0), 0, 255)
    distinct = int(np.count_nonzero(np.bincount(q.astype(np.int64).ravel(), minlength=256)))
    vals = float(2 ** np.ceil(np.log2(max(distinct, 2))))
    q = (q / 255.0).astype(np.float32)
    noise = (rng.poisson(q * vals) / vals).astype(np.float32) - q
    if p.gray:
        noise = noise[:, :, None]
    return img + np.float32(p.strength) * noise


def to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """JPEG round trip through OpenCV (BGR at the boundary; 4:2:0)."""
    bgr = np.ascontiguousarray(to_uint8(img)[:, :, ::-1])
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("OpenCV JPEG encoding failed")
    dec = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return dec[:, :, ::-1].astype(np.float32) / 255.0


# libx264's macroblock-tree rate control (``mbtree``, on by default) makes the bitstream depend on memory
# contents outside the frame: the same frames, encoded twice in one process or in two processes, gave different
# bytes for about one clip in six (measured: threads, sliced threads, lookahead threads, frame timestamps and
# mod-16 padding do not change that; ``mbtree=0`` removes it, 0 of 36 clips differ). See docs/determinism.md.
X264_PARAMS = "mbtree=0"


def codec_options(codec: str) -> dict[str, str]:
    """Encoder options that make ``codec`` deterministic (empty for codecs that already are)."""
    return {"x264-params": X264_PARAMS} if codec in ("libx264", "h264") and X264_PARAMS else {}


def video_compress(frames, p: CodecParams, *, threads: int = 1, as_uint8: bool = False) -> list[np.ndarray]:
    """Encode a clip as one video stream (1 fps, so ``bitrate`` is bits per frame) and decode it back.

    ``frames``: any iterable of float32 ``[H, W, 3]`` in 0..1 or uint8 (consumed in order, so a producer can still be
    computing later frames while earlier ones are encoded); returns float32 in 0..1, or the decoded uint8 frames
    with ``as_uint8``.

    libx264 refuses rates under 1 kbit/s: below 1,000 bits a frame the stream runs at ``ceil(1000 / bitrate)`` fps
    with the rate scaled to match, so ``bitrate`` stays the bits a frame gets.

    libx264 / h264 need even sizes: odd sizes are padded with replicated pixels and cropped after decoding.
    ``threads`` is fixed so the bytes do not depend on the machine's core count, and libx264 runs without its
    macroblock tree (:data:`X264_PARAMS`), the one setting found to make its output vary between runs.
    """
    import av

    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise ValueError("video_compress: no frames")
    h, w = first.shape[:2]
    pad_h, pad_w = (h % 2, w % 2) if p.codec in ("libx264", "h264") else (0, 0)
    buf = io.BytesIO()
    count = 0
    with av.open(buf, mode="w", format="mp4") as container:
        fps = max(1, math.ceil(1000 / p.bitrate))
        stream = container.add_stream(p.codec, rate=Fraction(fps), options=codec_options(p.codec))
        stream.width, stream.height, stream.pix_fmt = w + pad_w, h + pad_h, "yuv420p"
        stream.bit_rate = int(p.bitrate) * fps
        stream.codec_context.thread_count = threads
        for i, f in enumerate(itertools.chain([first], frames)):
            if f.shape[:2] != (h, w):
                raise ValueError("video_compress: all frames of a clip must have one size")
            count += 1
            u8 = f if f.dtype == np.uint8 else to_uint8(f)
            if pad_h or pad_w:
                u8 = np.pad(u8, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
            vf = av.VideoFrame.from_ndarray(u8, format="rgb24")
            vf.pts, vf.time_base = i, Fraction(1, fps)
            container.mux(stream.encode(vf))
        container.mux(stream.encode())
    out = []
    with av.open(io.BytesIO(buf.getvalue()), mode="r") as container:
        vs = container.streams.video[0]
        vs.codec_context.thread_count = threads
        for frame in container.decode(vs):
            u8 = frame.to_ndarray(format="rgb24")[:h, :w]
            out.append(np.ascontiguousarray(u8) if as_uint8 else u8.astype(np.float32) / 255.0)
    if len(out) != count:
        raise RuntimeError(f"video_compress ({p.codec}): encoded {count} frames, decoded {len(out)}")
    return out
