"""Corruptions at five severities for the robustness benchmark (``daflow robustness``; ``docs/robustness.md``).

The image corruptions follow ImageNet-C (Hendrycks & Dietterich 2019) and RobustSpring (Schmalfuss et al. 2025) by
name, group and per-severity constants; the video ones (``h264``, ``low_light``, ``downscale``, ``realbasicvsr``) are
this project's. Every corruption is **time-consistent**: one random draw per clip (noise fields, blur direction,
weather layers) applied identically to every frame, except the codec, which is temporal by nature. Frost, spatter,
snow, rain and fog textures are procedural (the originals use photographs or plasma fractals): each is built from
smoothed random fields, as ``docs/robustness.md`` describes.

``corrupt(frames, name, severity, seed)``: uint8 RGB ``[F, H, W, 3]`` → the same shape and dtype; ``severity`` 1..5,
a pure function of its arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

SEVERITIES = (1, 2, 3, 4, 5)


@dataclass(frozen=True)
class Corruption:
    """``fn(frames [F, H, W, 3] float32 in 0..1, constant, rng) -> frames``; ``constants``: one a severity."""

    group: str
    fn: Callable
    constants: tuple


def _clip(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0.0, 1.0)


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """A zero-mean, unit-std random field ``[H, W]`` smoothed at ``sigma`` px."""
    field = cv2.GaussianBlur(rng.standard_normal(shape).astype(np.float32), (0, 0), max(sigma, 0.5))
    return (field - field.mean()) / (field.std() + 1e-8)


def _per_frame(frames: np.ndarray, op: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    return np.stack([op(f) for f in frames])


# ----------------------------------------------------------------------------------------------------------- noise


def _gaussian_noise(x, c, rng):
    return _clip(x + rng.normal(0, c, x.shape[1:]).astype(np.float32))


def _shot_noise(x, c, rng):
    """Poisson noise of ``c`` photons at full scale, in its Gaussian form (std √(x / c)); one draw for the clip."""
    gain = rng.standard_normal(x.shape[1:]).astype(np.float32)
    return _clip(x + gain * np.sqrt(np.maximum(x, 0) / c))


def _impulse_noise(x, c, rng):
    u = rng.random(x.shape[1:])
    out = x.copy()
    out[:, u < c / 2] = 0.0
    out[:, (u >= c / 2) & (u < c)] = 1.0
    return out


def _speckle_noise(x, c, rng):
    return _clip(x + x * rng.normal(0, c, x.shape[1:]).astype(np.float32))


# ------------------------------------------------------------------------------------------------------------ blur


def _gaussian_blur(x, c, rng):
    return _per_frame(x, lambda f: cv2.GaussianBlur(f, (0, 0), c))


def _disk(radius: float, alias_sigma: float) -> np.ndarray:
    r = int(np.ceil(radius))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    k = ((xx**2 + yy**2) <= radius**2).astype(np.float32)
    k = cv2.GaussianBlur(k / k.sum(), (0, 0), max(alias_sigma, 0.1))
    return k / k.sum()


def _defocus_blur(x, c, rng):
    k = _disk(*c)
    return _per_frame(x, lambda f: cv2.filter2D(f, -1, k, borderType=cv2.BORDER_REFLECT))


def _motion_blur(x, c, rng):
    length, sigma = c
    angle = rng.uniform(-45, 45)  # one direction for the clip
    size = 2 * int(length) + 1
    k = np.zeros((size, size), np.float32)
    k[size // 2, size // 2 :] = np.exp(-(np.arange(size - size // 2) ** 2) / (2 * sigma**2))  # a one-sided streak
    rot = cv2.getRotationMatrix2D((size // 2, size // 2), angle, 1.0)
    k = cv2.warpAffine(k, rot, (size, size))
    k /= k.sum()
    return _per_frame(x, lambda f: cv2.filter2D(f, -1, k, borderType=cv2.BORDER_REFLECT))


def _zoom(f: np.ndarray, z: float) -> np.ndarray:
    h, w = f.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 0, z)
    return cv2.warpAffine(f, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _zoom_blur(x, c, rng):
    zooms = np.arange(1.0, c[0], c[1])
    return _per_frame(x, lambda f: (f + sum(_zoom(f, z) for z in zooms[1:])) / len(zooms))


def _glass_blur(x, c, rng):
    sigma, delta, iterations = c
    h, w = x.shape[1:3]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    mx, my = xx.copy(), yy.copy()
    for _ in range(iterations):  # local random displacements (ImageNet-C swaps neighbouring pixels)
        mx = mx + rng.integers(-delta, delta + 1, (h, w)).astype(np.float32)
        my = my + rng.integers(-delta, delta + 1, (h, w)).astype(np.float32)
    mx, my = np.clip(mx, 0, w - 1), np.clip(my, 0, h - 1)

    def op(f):
        f = cv2.GaussianBlur(f, (0, 0), sigma)
        return cv2.GaussianBlur(cv2.remap(f, mx, my, cv2.INTER_NEAREST), (0, 0), sigma)

    return _per_frame(x, op)


# ---------------------------------------------------------------------------------------------------------- colour


def _hsv(x, op):
    def one(f):
        hsv = cv2.cvtColor(f, cv2.COLOR_RGB2HSV)  # float32: H 0..360, S and V 0..1
        return _clip(cv2.cvtColor(op(hsv), cv2.COLOR_HSV2RGB))

    return _per_frame(x, one)


def _brightness(x, c, rng):
    def op(hsv):
        hsv[..., 2] = np.clip(hsv[..., 2] + c, 0, 1)
        return hsv

    return _hsv(x, op)


def _contrast(x, c, rng):
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    return _clip((x - mean) * c + mean)


def _saturate(x, c, rng):
    def op(hsv):
        hsv[..., 1] = np.clip(hsv[..., 1] * c[0] + c[1], 0, 1)
        return hsv

    return _hsv(x, op)


# --------------------------------------------------------------------------------------------------------- quality


def _pixelate(x, c, rng):
    h, w = x.shape[1:3]
    small = (max(1, round(w / c)), max(1, round(h / c)))  # blocks of c x c pixels
    return _per_frame(
        x,
        lambda f: cv2.resize(
            cv2.resize(f, small, interpolation=cv2.INTER_AREA), (w, h), interpolation=cv2.INTER_NEAREST
        ),
    )


def _jpeg(x, c, rng):
    def op(f):
        ok, buf = cv2.imencode(".jpg", (f * 255).round().astype(np.uint8)[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, c])
        return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32) / 255

    return _per_frame(x, op)


def _elastic(x, c, rng):
    amplitude, sigma = c  # in units of the shorter side
    h, w = x.shape[1:3]
    side = min(h, w)
    dx = _smooth_field(rng, (h, w), sigma * side) * amplitude * side
    dy = _smooth_field(rng, (h, w), sigma * side) * amplitude * side
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    mx, my = xx + dx, yy + dy
    return _per_frame(x, lambda f: cv2.remap(f, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))


# --------------------------------------------------------------------------------------------------------- weather


def _fractal(rng: np.random.Generator, shape: tuple[int, int], decay: float) -> np.ndarray:
    """Procedural cloud texture in 0..1: octaves of upsampled noise, each ``decay`` times weaker (fog, frost)."""
    h, w = shape
    out, weight, size = np.zeros(shape, np.float32), 1.0, 4
    while size <= max(h, w) * 2:
        layer = cv2.resize(rng.random((size, size)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
        out += weight * layer
        weight /= decay
        size *= 2
    out -= out.min()
    return out / (out.max() + 1e-8)


def _fog(x, c, rng):
    strength, decay = c
    fog = _fractal(rng, x.shape[1:3], decay)[None, ..., None] * strength
    peak = x.max()
    return _clip((x + fog) * peak / (peak + strength))


def _frost(x, c, rng):
    image_w, frost_w = c
    h, w = x.shape[1:3]
    base = _fractal(rng, (h, w), 1.6)
    crystals = np.clip(_smooth_field(rng, (h, w), 1.5) * 0.5 + 0.5, 0, 1) ** 3  # fine needle texture
    frost = np.clip(0.6 * base + 0.6 * crystals, 0, 1)
    tint = np.array([0.85, 0.92, 1.0], np.float32)  # bluish white ice
    return _clip(image_w * x + frost_w * frost[None, ..., None] * tint)


def _snow(x, c, rng):
    density, size, blur = c
    h, w = x.shape[1:3]
    flakes = (rng.random((h, w)) < density).astype(np.float32)
    flakes = cv2.GaussianBlur(flakes, (0, 0), size) * size * 8
    angle = rng.uniform(-60, -30)
    length = int(blur)
    if length > 1:
        k = np.zeros((2 * length + 1, 2 * length + 1), np.float32)
        k[length, :] = 1.0
        k = cv2.warpAffine(k, cv2.getRotationMatrix2D((length, length), angle, 1.0), k.shape[::-1])
        flakes = cv2.filter2D(flakes, -1, k / k.sum())
    layer = np.clip(flakes, 0, 1)[None, ..., None]
    return _clip(x * (1 - 40 * density) + layer)  # a dimmer, snow-covered scene


def _rain(x, c, rng):
    drops, length, alpha = c
    h, w = x.shape[1:3]
    canvas = np.zeros((h, w), np.float32)
    angle = np.deg2rad(rng.uniform(-15, 15))
    n = int(drops * h * w / 1000)
    ys, xs = rng.integers(0, h, n), rng.integers(0, w, n)
    for y, xx in zip(ys, xs):  # a thin streak a drop
        end = (int(xx + length * np.sin(angle)), int(y + length * np.cos(angle)))
        cv2.line(canvas, (int(xx), int(y)), end, 1.0, 1)
    canvas = cv2.GaussianBlur(canvas, (0, 0), 0.7)
    return _clip(x * (1 - alpha * 0.3) + alpha * canvas[None, ..., None] * 0.8)


def _spatter(x, c, rng):
    threshold, sigma, mud = c
    h, w = x.shape[1:3]
    blobs = _smooth_field(rng, (h, w), sigma * min(h, w) / 64)
    mask = np.clip((blobs - threshold) * 2, 0, 1)[None, ..., None]
    colour = np.array([0.35, 0.25, 0.15], np.float32) if mud else np.array([0.75, 0.8, 0.85], np.float32)
    wet = cv2.GaussianBlur(x.mean(0), (0, 0), 2)[None] if not mud else colour
    return _clip(x * (1 - mask) + mask * (0.6 * wet + 0.4 * colour))


# ----------------------------------------------------------------------------------------------------------- video


def _h264(x, c, rng):
    from daflow.data.degrade.ops import video_compress
    from daflow.data.degrade.params import CodecParams

    bits = max(8, int(c * x.shape[1] * x.shape[2]))  # bits a frame from bits a pixel
    out = video_compress(list((x * 255).round().astype(np.uint8)), CodecParams("libx264", bits), as_uint8=True)
    return np.stack(out).astype(np.float32) / 255


def _low_light(x, c, rng):
    gain, noise = c
    dark = x**1.2 * gain
    grain = rng.standard_normal(x.shape[1:]).astype(np.float32)  # sensor noise: one pattern for the clip
    return _clip(dark + grain * np.sqrt(dark + 1e-4) * noise)


def _downscale(x, c, rng):
    h, w = x.shape[1:3]
    small = (max(1, round(w / c)), max(1, round(h / c)))
    return _per_frame(
        x,
        lambda f: cv2.resize(cv2.resize(f, small, interpolation=cv2.INTER_AREA), (w, h), interpolation=cv2.INTER_CUBIC),
    )


def _realbasicvsr(x, c, rng):
    from daflow.data.degrade import degrade_clip, sample_params

    frames = (x * 255).round().astype(np.uint8)
    seed = int(rng.integers(0, 2**31))
    lq = degrade_clip(frames, sample_params("realbasicvsr", len(frames), frames.shape[1:3], seed)).astype(np.float32)
    return (c * lq + (1 - c) * frames.astype(np.float32)) / 255  # the paper's mix, faded in by the severity


CORRUPTIONS: dict[str, Corruption] = {
    "gaussian_noise": Corruption("noise", _gaussian_noise, (0.08, 0.12, 0.18, 0.26, 0.38)),
    "shot_noise": Corruption("noise", _shot_noise, (60, 25, 12, 5, 3)),
    "impulse_noise": Corruption("noise", _impulse_noise, (0.03, 0.06, 0.09, 0.17, 0.27)),
    "speckle_noise": Corruption("noise", _speckle_noise, (0.15, 0.2, 0.35, 0.45, 0.6)),
    "gaussian_blur": Corruption("blur", _gaussian_blur, (1, 2, 3, 4, 6)),
    "defocus_blur": Corruption("blur", _defocus_blur, ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5))),
    "motion_blur": Corruption("blur", _motion_blur, ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15))),
    "zoom_blur": Corruption("blur", _zoom_blur, ((1.11, 0.01), (1.16, 0.01), (1.21, 0.02), (1.26, 0.02), (1.31, 0.03))),
    "glass_blur": Corruption("blur", _glass_blur, ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2))),
    "brightness": Corruption("colour", _brightness, (0.1, 0.2, 0.3, 0.4, 0.5)),
    "contrast": Corruption("colour", _contrast, (0.4, 0.3, 0.2, 0.1, 0.05)),
    "saturate": Corruption("colour", _saturate, ((1.5, 0.0), (2.0, 0.0), (3.0, 0.05), (5.0, 0.1), (10.0, 0.2))),
    "pixelate": Corruption("quality", _pixelate, (2, 3, 4, 6, 8)),
    "jpeg_compression": Corruption("quality", _jpeg, (25, 18, 15, 10, 7)),
    "elastic_transform": Corruption(
        "quality", _elastic, ((0.004, 0.04), (0.008, 0.04), (0.012, 0.03), (0.016, 0.03), (0.024, 0.02))
    ),
    "fog": Corruption("weather", _fog, ((1.0, 1.7), (1.5, 1.7), (2.0, 1.7), (2.5, 1.7), (3.0, 1.7))),
    "frost": Corruption("weather", _frost, ((0.9, 0.3), (0.8, 0.45), (0.7, 0.6), (0.6, 0.7), (0.5, 0.8))),
    "snow": Corruption(
        "weather", _snow, ((0.001, 1.0, 4), (0.002, 1.2, 6), (0.003, 1.4, 8), (0.004, 1.6, 10), (0.006, 1.8, 12))
    ),
    "rain": Corruption("weather", _rain, ((2, 8, 0.4), (4, 10, 0.5), (6, 12, 0.6), (9, 14, 0.7), (12, 16, 0.8))),
    "spatter": Corruption("weather", _spatter, ((1.6, 2, 0), (1.3, 3, 0), (1.0, 3, 0), (1.0, 3, 1), (0.7, 4, 1))),
    "h264": Corruption("video", _h264, (0.2, 0.08, 0.04, 0.02, 0.01)),
    "low_light": Corruption("video", _low_light, ((0.6, 0.02), (0.45, 0.03), (0.3, 0.04), (0.2, 0.05), (0.12, 0.06))),
    "downscale": Corruption("video", _downscale, (2, 3, 4, 6, 8)),
    "realbasicvsr": Corruption("video", _realbasicvsr, (0.2, 0.4, 0.6, 0.8, 1.0)),
}
GROUPS = ("noise", "blur", "colour", "quality", "weather", "video")


def check_names(names: list[str], severities: list[int]) -> None:
    """One-line errors for unknown corruption names and severities outside 1..5."""
    bad = [n for n in names if n not in CORRUPTIONS]
    if bad:
        raise ValueError(f"--corruptions: unknown {', '.join(bad)}; choose from {', '.join(CORRUPTIONS)}")
    outside = [s for s in severities if s not in SEVERITIES]
    if outside or not severities:
        raise ValueError(f"--severities must lie in 1..5, got {severities}")


def corrupt(frames: np.ndarray, name: str, severity: int, seed: int = 0) -> np.ndarray:
    """``frames`` uint8 RGB ``[F, H, W, 3]`` corrupted by ``name`` at ``severity`` (1..5), one random draw for the
    clip from ``seed`` (module docstring)."""
    check_names([name], [severity])
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [F, H, W, 3], got {frames.dtype} {frames.shape}")
    c = CORRUPTIONS[name]
    salt = sum(ord(ch) for ch in name)
    rng = np.random.default_rng([seed, salt])  # the same draw at every severity: only the strength changes
    out = c.fn(frames.astype(np.float32) / 255, c.constants[severity - 1], rng)
    return (np.clip(out, 0, 1) * 255).round().astype(np.uint8)
