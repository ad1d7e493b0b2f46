"""Ranges and probabilities of the degradation pipeline, as frozen dataclasses with named presets.

``realbasicvsr`` (the paper's pipeline, default) follows the RealBasicVSR column of
``docs/degradations.md``; the other presets are documented in the README's degradation table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

# Real-ESRGAN's kernel mix (RealBasicVSR lists the same marginals in one list).
RBVSR_FAMILIES = (
    ("iso", 0.405),
    ("aniso", 0.225),
    ("generalized_iso", 0.108),
    ("generalized_aniso", 0.027),
    ("plateau_iso", 0.108),
    ("plateau_aniso", 0.027),
    ("sinc", 0.1),
)
KERNEL_SIZES = (7, 9, 11, 13, 15, 17, 19, 21)
INTERPOLATIONS = ("area", "bilinear", "bicubic")
CODECS = ("libx264", "h264", "mpeg4")


@dataclass(frozen=True)
class BlurConfig:
    """One blur step. σ in pixels, θ in radians; β ranges are split at 1 with probability ½ (Real-ESRGAN)."""

    prob: float = 1.0
    sizes: tuple[int, ...] = KERNEL_SIZES
    families: tuple[tuple[str, float], ...] = RBVSR_FAMILIES
    sigma: tuple[float, float] = (0.2, 3.0)
    beta_generalized: tuple[float, float] = (0.5, 4.0)
    beta_plateau: tuple[float, float] = (1.0, 2.0)
    # per-frame random-walk steps (RealBasicVSR)
    sigma_step: float = 0.02
    theta_step: float = math.pi / 10
    beta_generalized_step: float = 0.05
    beta_plateau_step: float = 0.1
    omega_step: float = 0.0628


@dataclass(frozen=True)
class NoiseConfig:
    gaussian_prob: float = 0.5  # else Poisson
    gaussian_sigma: tuple[float, float] = (1.0, 30.0)  # on the 0..255 scale
    poisson_scale: tuple[float, float] = (0.05, 3.0)
    gray_prob: float = 0.4
    gaussian_step: float = 0.1
    poisson_step: float = 0.005


@dataclass(frozen=True)
class ResizeConfig:
    probs: tuple[float, float, float] = (0.2, 0.7, 0.1)  # up, down, keep
    up: tuple[float, float] = (1.0, 1.5)
    down: tuple[float, float] = (0.15, 1.0)
    interpolations: tuple[str, ...] = INTERPOLATIONS


@dataclass(frozen=True)
class StageConfig:
    blur: BlurConfig = field(default_factory=BlurConfig)
    resize: ResizeConfig = field(default_factory=ResizeConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    jpeg: tuple[int, int] | None = (30, 95)  # None: no JPEG in this stage
    jpeg_step: int = 3
    video: bool = False  # whole-clip video compression at the end of the stage


@dataclass(frozen=True)
class DegradationConfig:
    """The whole pipeline (``docs/degradations.md``).

    Attributes:
        scale: the LQ target is ``round(H / scale) × round(W / scale)``.
        upsample_back: bicubic back to exactly ``H × W`` at the end (alignment: the GT flow stays valid).
        usm: unsharp-mask the HQ first (the LQ is made from the sharpened HQ).
        temporal: ``"clip"`` draws discrete choices once per clip and lets continuous parameters drift per
            frame (RealBasicVSR); ``"frame"`` draws everything independently per frame (STAR).
        stage2_reference: stage-2 resize relative to the ``"lq"`` target (Real-ESRGAN) or the ``"current"``
            stage-1 size (RealBasicVSR).
        final_compression: ``"jpeg"`` (Real-ESRGAN) or ``"video"`` (RealBasicVSR / STAR) in the final group.
        final_sinc_prob: probability of the final sinc filter.
        codecs, bitrate: video codec choices and bits per frame (streams run at 1 fps).
    """

    name: str = "realbasicvsr"
    scale: float = 4.0
    upsample_back: bool = True
    usm: bool = True
    temporal: str = "clip"
    stage1: StageConfig = field(default_factory=lambda: StageConfig(video=True))
    stage2: StageConfig = field(
        default_factory=lambda: StageConfig(
            blur=BlurConfig(prob=0.8, sigma=(0.2, 1.5)),
            resize=ResizeConfig(probs=(0.3, 0.4, 0.3), up=(1.0, 1.2), down=(0.3, 1.0)),
            noise=NoiseConfig(gaussian_sigma=(1.0, 25.0), poisson_scale=(0.05, 2.5)),
        )
    )
    stage2_reference: str = "current"
    final_compression: str = "video"
    final_sinc_prob: float = 0.8
    final_interpolations: tuple[str, ...] = INTERPOLATIONS
    codecs: tuple[str, ...] = CODECS
    bitrate: tuple[int, int] = (10_000, 100_000)

    def __post_init__(self) -> None:
        if self.scale < 1:
            raise ValueError(f"scale must be >= 1, got {self.scale}")
        if self.temporal not in ("clip", "frame"):
            raise ValueError(f"temporal must be 'clip' or 'frame', got {self.temporal!r}")
        if self.stage2_reference not in ("lq", "current"):
            raise ValueError(f"stage2_reference must be 'lq' or 'current', got {self.stage2_reference!r}")
        if self.final_compression not in ("jpeg", "video"):
            raise ValueError(f"final_compression must be 'jpeg' or 'video', got {self.final_compression!r}")


def _realesrgan() -> DegradationConfig:
    base = DegradationConfig()
    return replace(
        base,
        name="realesrgan",
        stage1=replace(base.stage1, video=False),
        stage2=replace(base.stage2, jpeg=(30, 95)),
        stage2_reference="lq",
        final_compression="jpeg",
    )


def _star() -> DegradationConfig:
    return replace(DegradationConfig(), name="star", temporal="frame", stage2_reference="lq")


def _mild() -> DegradationConfig:
    base = DegradationConfig()
    return replace(
        base,
        name="mild",
        scale=2.0,
        stage1=StageConfig(
            blur=BlurConfig(sigma=(0.2, 1.5)),
            resize=ResizeConfig(probs=(0.2, 0.5, 0.3), down=(0.5, 1.0)),
            noise=NoiseConfig(gaussian_sigma=(1.0, 10.0), poisson_scale=(0.05, 1.0)),
            jpeg=(60, 95),
            video=True,
        ),
        stage2=StageConfig(
            blur=BlurConfig(prob=0.5, sigma=(0.2, 1.0)),
            resize=ResizeConfig(probs=(0.3, 0.4, 0.3), up=(1.0, 1.2), down=(0.6, 1.0)),
            noise=NoiseConfig(gaussian_sigma=(1.0, 5.0), poisson_scale=(0.05, 0.5)),
            jpeg=(70, 95),
        ),
        final_sinc_prob=0.5,
        bitrate=(100_000, 1_000_000),
    )


def _severe() -> DegradationConfig:
    base = DegradationConfig()
    return replace(
        base,
        name="severe",
        stage1=StageConfig(
            blur=BlurConfig(sigma=(1.0, 4.0)),
            resize=ResizeConfig(probs=(0.0, 0.9, 0.1), down=(0.15, 0.6)),
            noise=NoiseConfig(gaussian_sigma=(10.0, 40.0), poisson_scale=(1.0, 4.0)),
            jpeg=(20, 60),
            video=True,
        ),
        stage2=StageConfig(
            blur=BlurConfig(prob=1.0, sigma=(0.5, 2.0)),
            resize=ResizeConfig(probs=(0.1, 0.6, 0.3), up=(1.0, 1.2), down=(0.3, 0.8)),
            noise=NoiseConfig(gaussian_sigma=(5.0, 30.0), poisson_scale=(0.5, 3.0)),
            jpeg=(20, 60),
        ),
        final_sinc_prob=1.0,
        bitrate=(10_000, 30_000),
    )


def _codec() -> DegradationConfig:
    """Real-codec damage: little blur or noise, the whole clip through H.264/MPEG-4 at 300-6,000 bits a frame
    (a 176×144 clip at ~60 bytes a frame is the kind of input this stands for: blocking, smearing, frozen blocks)."""
    base = DegradationConfig()
    quiet = NoiseConfig(gaussian_sigma=(0.5, 4.0), poisson_scale=(0.02, 0.3))
    return replace(
        base,
        name="codec",
        scale=2.0,
        usm=False,
        stage1=StageConfig(
            blur=BlurConfig(prob=0.5, sigma=(0.2, 1.0)),
            resize=ResizeConfig(probs=(0.0, 0.3, 0.7), down=(0.7, 1.0)),
            noise=quiet,
            jpeg=None,
            video=False,
        ),
        stage2=StageConfig(
            blur=BlurConfig(prob=0.3, sigma=(0.2, 0.8)),
            resize=ResizeConfig(probs=(0.0, 0.0, 1.0)),
            noise=quiet,
            jpeg=None,
        ),
        final_sinc_prob=0.2,
        codecs=("libx264", "mpeg4"),
        bitrate=(300, 6_000),
    )


def _h264() -> DegradationConfig:
    """Codec damage alone: the frames at their own size, no blur, resize or sharpening, only H.264 at 300-3,000 bits a
    frame (and at most 1 grey level of noise): blocking, smearing and flicker on otherwise sharp footage."""
    still = StageConfig(
        blur=BlurConfig(prob=0.0),
        resize=ResizeConfig(probs=(0.0, 0.0, 1.0)),
        noise=NoiseConfig(gaussian_prob=1.0, gaussian_sigma=(0.0, 1.0), gray_prob=1.0),
        jpeg=None,
        video=False,
    )
    return replace(
        DegradationConfig(),
        name="h264",
        scale=1.0,
        usm=False,
        stage1=still,
        stage2=still,
        final_sinc_prob=0.0,
        codecs=("libx264",),
        bitrate=(300, 3_000),
    )


def _h264_low() -> DegradationConfig:
    """:func:`_h264` at lower rates, 150-1,200 bits a frame (0.01-0.07 bits a pixel at 128²; a 176×144 clip at 800
    bits a frame has 0.03): the damage of the low-bit-rate streams that a restorer meets, which ``h264``'s rates reach
    only at their low end."""
    return replace(_h264(), name="h264-low", bitrate=(150, 1_200))


DEGRADATION_PRESETS: dict[str, DegradationConfig] = {
    "realbasicvsr": DegradationConfig(),
    "realesrgan": _realesrgan(),
    "star": _star(),
    "mild": _mild(),
    "severe": _severe(),
    "codec": _codec(),
    "h264": _h264(),
    "h264-low": _h264_low(),
}


def get_preset(name: str) -> DegradationConfig:
    if name not in DEGRADATION_PRESETS:
        raise ValueError(f"unknown degradation preset {name!r}; expected one of {sorted(DEGRADATION_PRESETS)}")
    return DEGRADATION_PRESETS[name]
