"""``DegradationParams``: every value the pipeline uses for one clip, sampled once from a seed.

The record is plain data (serialisable to JSON) so a clip can be re-degraded byte-for-byte from a manifest.
With ``temporal="clip"`` (RealBasicVSR) the discrete choices (kernel family and size, noise type, grey
noise, resize mode and sizes, interpolations, codec and bitrate, final order) are drawn once per clip and the
continuous ones (σx, σy, θ, β, ω, noise level, JPEG quality) take a clipped random walk from frame to frame,
``p_{t+1} = clip(p_t + U(−step, step), range)``. Resize factors are not walked, unlike RealBasicVSR: one codec
stream needs one frame size (``docs/degradations.md``, alignment rules). With ``temporal="frame"`` (STAR)
every frame is drawn independently.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np

from daflow.data.degrade.config import BlurConfig, DegradationConfig, NoiseConfig, StageConfig, get_preset

PARAMS_VERSION = 1


@dataclass
class BlurParams:
    family: str
    size: int
    sigma_x: float
    sigma_y: float
    theta: float
    beta: float
    omega: float


@dataclass
class NoiseParams:
    kind: str  # "gaussian" | "poisson"
    gray: bool
    strength: float  # Gaussian σ on 0..255, or Poisson scale


@dataclass
class CodecParams:
    codec: str
    bitrate: int


@dataclass
class FrameParams:
    """Everything applied to one frame (shared values are repeated in every frame of a clip)."""

    s1_blur: BlurParams | None
    s1_size: tuple[int, int]  # (H, W) after the stage-1 resize
    s1_interp: str
    s1_noise: NoiseParams
    s1_jpeg: int | None
    s1_codec: CodecParams | None
    s2_blur: BlurParams | None
    s2_size: tuple[int, int]
    s2_interp: str
    s2_noise: NoiseParams
    s2_jpeg: int | None
    final_order: str  # "resize_first" | "compress_first"
    final_interp: str
    final_sinc: BlurParams | None
    final_jpeg: int | None
    final_codec: CodecParams | None


@dataclass
class DegradationParams:
    """The sampled degradation of one clip. ``degrade_clip(frames, params)`` depends on nothing else."""

    preset: str
    seed: int
    hq_size: tuple[int, int]
    lq_size: tuple[int, int]
    upsample_back: bool
    usm: bool
    codec_scope: str  # "clip": one stream for the whole clip; "frame": each frame alone
    noise_seed: int
    frames: list[FrameParams] = field(default_factory=list)
    version: int = PARAMS_VERSION

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DegradationParams:
        if d.get("version") != PARAMS_VERSION:
            raise ValueError(
                f"degradation params version {d.get('version')!r} is not supported (expected {PARAMS_VERSION})"
            )
        sub = {
            "s1_blur": BlurParams,
            "s2_blur": BlurParams,
            "final_sinc": BlurParams,
            "s1_noise": NoiseParams,
            "s2_noise": NoiseParams,
            "s1_codec": CodecParams,
            "final_codec": CodecParams,
        }

        def frame(fd: dict[str, Any]) -> FrameParams:
            kw = {}
            for f in fields(FrameParams):
                v = fd[f.name]
                if f.name in sub and v is not None:
                    v = sub[f.name](**v)
                elif f.name.endswith("_size"):
                    v = tuple(v)
                kw[f.name] = v
            return FrameParams(**kw)

        top = {k: v for k, v in d.items() if k != "frames"}
        top["hq_size"], top["lq_size"] = tuple(top["hq_size"]), tuple(top["lq_size"])
        return cls(**top, frames=[frame(fd) for fd in d["frames"]])

    @classmethod
    def from_json(cls, text: str) -> DegradationParams:
        return cls.from_dict(json.loads(text))


# ------------------------------------------------------------------------------------------- sampling


def _choice(rng: np.random.Generator, options, probs=None):
    idx = rng.choice(len(options), p=None if probs is None else np.asarray(probs) / np.sum(probs))
    return options[int(idx)]


def _split_beta(rng: np.random.Generator, lo: float, hi: float) -> float:
    """Real-ESRGAN's β: with probability ½ from [lo, 1), else from [1, hi]."""
    if rng.random() < 0.5 and lo < 1:
        return float(rng.uniform(lo, 1.0))
    return float(rng.uniform(1.0, hi))


def _walk(rng: np.random.Generator, value: float, step: float, lo: float, hi: float) -> float:
    return float(np.clip(value + rng.uniform(-step, step), lo, hi))


def _sample_blur(rng: np.random.Generator, cfg: BlurConfig) -> BlurParams:
    family = _choice(rng, [f for f, _ in cfg.families], [p for _, p in cfg.families])
    size = int(_choice(rng, cfg.sizes))
    sx = float(rng.uniform(*cfg.sigma))
    sy = float(rng.uniform(*cfg.sigma)) if "aniso" in family else sx
    theta = float(rng.uniform(-math.pi, math.pi)) if "aniso" in family else 0.0
    if family.startswith("generalized"):
        beta = _split_beta(rng, *cfg.beta_generalized)
    elif family.startswith("plateau"):
        beta = _split_beta(rng, *cfg.beta_plateau)
    else:
        beta = 1.0
    omega = float(rng.uniform(math.pi / 3, math.pi) if size < 13 else rng.uniform(math.pi / 5, math.pi))
    return BlurParams(family, size, sx, sy, theta, beta, omega)


def _walk_blur(rng: np.random.Generator, b: BlurParams, cfg: BlurConfig) -> BlurParams:
    sx = _walk(rng, b.sigma_x, cfg.sigma_step, *cfg.sigma)
    sy = _walk(rng, b.sigma_y, cfg.sigma_step, *cfg.sigma) if "aniso" in b.family else sx
    theta = b.theta + rng.uniform(-cfg.theta_step, cfg.theta_step) if "aniso" in b.family else 0.0
    theta = float((theta + math.pi) % (2 * math.pi) - math.pi)
    beta = b.beta
    if b.family.startswith("generalized"):
        beta = _walk(rng, b.beta, cfg.beta_generalized_step, *cfg.beta_generalized)
    elif b.family.startswith("plateau"):
        beta = _walk(rng, b.beta, cfg.beta_plateau_step, *cfg.beta_plateau)
    omega_lo = math.pi / 3 if b.size < 13 else math.pi / 5
    omega = _walk(rng, b.omega, cfg.omega_step, omega_lo, math.pi)
    return BlurParams(b.family, b.size, sx, sy, theta, beta, omega)


def _sample_final_sinc(rng: np.random.Generator, sizes) -> BlurParams:
    size = int(_choice(rng, sizes))
    return BlurParams("sinc", size, 1.0, 1.0, 0.0, 1.0, float(rng.uniform(math.pi / 3, math.pi)))


def _sample_noise(rng: np.random.Generator, cfg: NoiseConfig) -> NoiseParams:
    if rng.random() < cfg.gaussian_prob:
        return NoiseParams("gaussian", bool(rng.random() < cfg.gray_prob), float(rng.uniform(*cfg.gaussian_sigma)))
    return NoiseParams("poisson", bool(rng.random() < cfg.gray_prob), float(rng.uniform(*cfg.poisson_scale)))


def _walk_noise(rng: np.random.Generator, n: NoiseParams, cfg: NoiseConfig) -> NoiseParams:
    if n.kind == "gaussian":
        return NoiseParams(n.kind, n.gray, _walk(rng, n.strength, cfg.gaussian_step, *cfg.gaussian_sigma))
    return NoiseParams(n.kind, n.gray, _walk(rng, n.strength, cfg.poisson_step, *cfg.poisson_scale))


def _resize_factor(rng: np.random.Generator, stage: StageConfig) -> float:
    mode = _choice(rng, ("up", "down", "keep"), stage.resize.probs)
    if mode == "up":
        return float(rng.uniform(*stage.resize.up))
    if mode == "down":
        return float(rng.uniform(*stage.resize.down))
    return 1.0


def _scaled(size: tuple[int, int], factor: float) -> tuple[int, int]:
    return (max(2, int(round(size[0] * factor))), max(2, int(round(size[1] * factor))))


def _sample_frame(
    rng: np.random.Generator, cfg: DegradationConfig, hq: tuple[int, int], lq: tuple[int, int]
) -> FrameParams:
    """All parameters of one frame (the first frame of a clip, or each frame with temporal="frame")."""
    s1, s2 = cfg.stage1, cfg.stage2
    s1_blur = _sample_blur(rng, s1.blur) if rng.random() < s1.blur.prob else None
    s1_size = _scaled(hq, _resize_factor(rng, s1))
    s1_interp = _choice(rng, s1.resize.interpolations)
    s1_noise = _sample_noise(rng, s1.noise)
    s1_jpeg = int(round(rng.uniform(*s1.jpeg))) if s1.jpeg else None
    s1_codec = (
        CodecParams(_choice(rng, cfg.codecs), int(rng.integers(cfg.bitrate[0], cfg.bitrate[1] + 1)))
        if s1.video
        else None
    )
    s2_blur = _sample_blur(rng, s2.blur) if rng.random() < s2.blur.prob else None
    ref = lq if cfg.stage2_reference == "lq" else s1_size
    s2_size = _scaled(ref, _resize_factor(rng, s2))
    s2_interp = _choice(rng, s2.resize.interpolations)
    s2_noise = _sample_noise(rng, s2.noise)
    # Real-ESRGAN puts the stage-2 JPEG inside the final group; RealBasicVSR applies it before the group.
    s2_jpeg = int(round(rng.uniform(*s2.jpeg))) if (s2.jpeg and cfg.final_compression == "video") else None
    final_order = _choice(rng, ("resize_first", "compress_first"))
    final_interp = _choice(rng, cfg.final_interpolations)
    final_sinc = _sample_final_sinc(rng, s2.blur.sizes) if rng.random() < cfg.final_sinc_prob else None
    final_jpeg = int(round(rng.uniform(*s2.jpeg))) if (cfg.final_compression == "jpeg" and s2.jpeg) else None
    final_codec = (
        CodecParams(_choice(rng, cfg.codecs), int(rng.integers(cfg.bitrate[0], cfg.bitrate[1] + 1)))
        if cfg.final_compression == "video"
        else None
    )
    return FrameParams(
        s1_blur,
        s1_size,
        s1_interp,
        s1_noise,
        s1_jpeg,
        s1_codec,
        s2_blur,
        s2_size,
        s2_interp,
        s2_noise,
        s2_jpeg,
        final_order,
        final_interp,
        final_sinc,
        final_jpeg,
        final_codec,
    )


def _walk_jpeg(
    rng: np.random.Generator, q: int | None, stage: StageConfig, rng_range: tuple[int, int] | None
) -> int | None:
    if q is None or rng_range is None:
        return q
    return int(np.clip(q + int(rng.integers(-stage.jpeg_step, stage.jpeg_step + 1)), *rng_range))


def _walk_frame(rng: np.random.Generator, p: FrameParams, cfg: DegradationConfig) -> FrameParams:
    """The next frame's parameters: a small random step of every blur, noise and JPEG draw (stage 1, stage 2, the
    final sinc and JPEG, in that order of random draws); sizes, interpolations and codecs stay."""
    walked: dict[str, Any] = {}
    for prefix, stage in (("s1", cfg.stage1), ("s2", cfg.stage2)):
        blur = getattr(p, f"{prefix}_blur")
        walked[f"{prefix}_blur"] = _walk_blur(rng, blur, stage.blur) if blur else None
        walked[f"{prefix}_noise"] = _walk_noise(rng, getattr(p, f"{prefix}_noise"), stage.noise)
        walked[f"{prefix}_jpeg"] = _walk_jpeg(rng, getattr(p, f"{prefix}_jpeg"), stage, stage.jpeg)
    s2 = cfg.stage2
    walked["final_sinc"] = _walk_blur(rng, p.final_sinc, s2.blur) if p.final_sinc else None
    walked["final_jpeg"] = _walk_jpeg(rng, p.final_jpeg, s2, s2.jpeg)
    return replace(p, **walked)


def sample_params(
    config: DegradationConfig | str, num_frames: int, hq_size: tuple[int, int], seed: int
) -> DegradationParams:
    """Sample the degradation of a clip of ``num_frames`` frames of size ``hq_size = (H, W)``."""
    cfg = get_preset(config) if isinstance(config, str) else config
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    h, w = int(hq_size[0]), int(hq_size[1])
    if h < 2 or w < 2:
        raise ValueError(f"frames must be at least 2x2, got {w}x{h}")
    rng = np.random.default_rng(seed)
    lq = (max(2, int(round(h / cfg.scale))), max(2, int(round(w / cfg.scale))))
    frames = [_sample_frame(rng, cfg, (h, w), lq)]
    for _ in range(num_frames - 1):
        frames.append(
            _walk_frame(rng, frames[-1], cfg) if cfg.temporal == "clip" else _sample_frame(rng, cfg, (h, w), lq)
        )
    return DegradationParams(
        preset=cfg.name,
        seed=int(seed),
        hq_size=(h, w),
        lq_size=lq,
        upsample_back=cfg.upsample_back,
        usm=cfg.usm,
        codec_scope="clip" if cfg.temporal == "clip" else "frame",
        noise_seed=int(rng.integers(0, 2**63 - 1)),
        frames=frames,
    )
