"""Exact-ground-truth synthetic clips: layered scenes with smooth parametric motion.

A scene is a background layer and several foreground objects, drawn back to front. Each layer ``l`` is
a texture (a real photograph bundled with scikit-image, or a procedural texture) with an analytic shape
(the background covers everything; objects are perturbed superellipses) and an affine map from texture
coordinates ``u`` to image coordinates ``x`` that moves smoothly with time ``t`` (in frames):

    x = A_l(t)·u = c_l(t) + s_l(t)·R(θ_l(t))·(u − u0_l),
    c_l(t) = c0 + v·t + ½·a·t²,   θ_l(t) = θ0 + ω·t,   s_l(t) = s0·exp(ρ·t).

Because everything is analytic, the forward flow of pixel ``x`` in frame k is exact:
``f(x) = A_l(k+1)·A_l(k)⁻¹·x − x`` for the front-most layer ``l`` covering ``x``; ``x`` is occluded in frame
k+1 when a different layer covers ``A_l(k+1)·A_l(k)⁻¹·x`` there, or that point leaves the image.
Rendering is vectorised (one ``cv2.remap`` per layer and frame); a 3-frame 256×256 clip takes tens of ms.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from daflow.data.base import FlowSample

# Real photographs shipped inside the scikit-image wheel (no download), RGB or grey.
PHOTO_FILES = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "hubble_deep_field.jpg",
    "ihc.png",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "retina.jpg",
    "brick.png",
    "grass.png",
    "gravel.png",
    "camera.png",
)
# The rest of what the installed packages ship (``photos="all"``): scikit-image's other photographs and scans, and
# matplotlib's sample photograph. Kept apart so that clips of the ``classic`` set render as they always did.
EXTRA_PHOTO_FILES = (
    "cell.png",
    "coins.png",
    "moon.png",
    "page.png",
    "text.png",
    "color.png",
    "clock_motion.png",
    "phantom.png",
    "microaneurysms.png",
    "chessboard_RGB.png",
    "logo.png",
    "horse.png",
    "matplotlib:grace_hopper.jpg",
    "matplotlib:Minduka_Present_Blue_Pack.png",
)
PHOTO_SETS = ("classic", "all")


@dataclass(frozen=True)
class SyntheticConfig:
    """Scene and motion ranges of the synthetic clips (pixels and frames)."""

    height: int = 256
    width: int = 256
    num_frames: int = 3
    num_objects: tuple[int, int] = (2, 5)
    object_radius: tuple[float, float] = (0.12, 0.3)  # fraction of min(H, W)
    object_speed: float = 8.0  # max |v| in px/frame
    object_accel: float = 1.0  # max |a| in px/frame²
    object_rotation: float = 3.0  # max |ω| in degrees/frame
    object_zoom: float = 0.03  # max |ρ| (relative scale change per frame)
    camera_speed: float = 4.0  # background max |v| in px/frame
    camera_rotation: float = 1.0
    camera_zoom: float = 0.015
    photo_probability: float = 0.7  # else a procedural texture
    texture_blur: float = 0.7  # Gaussian σ applied to textures (band limit, like a real camera)
    photos: str = "classic"  # "classic": PHOTO_FILES; "all": also EXTRA_PHOTO_FILES

    def __post_init__(self) -> None:
        if self.height < 16 or self.width < 16:
            raise ValueError(f"synthetic frames must be at least 16x16, got {self.width}x{self.height}")
        if self.num_frames < 2:
            raise ValueError(f"num_frames must be >= 2, got {self.num_frames}")
        lo, hi = self.num_objects
        if not 0 <= lo <= hi:
            raise ValueError(f"num_objects must be (min, max) with 0 <= min <= max, got {self.num_objects}")
        if self.photos not in PHOTO_SETS:
            raise ValueError(f"photos must be one of {PHOTO_SETS}, got {self.photos!r}")


SYNTHETIC_PRESETS: dict[str, SyntheticConfig] = {
    "tiny": SyntheticConfig(height=128, width=128, num_objects=(1, 3), object_speed=5.0, camera_speed=3.0),
    "default": SyntheticConfig(),
    "large-motion": SyntheticConfig(object_speed=24.0, object_accel=3.0, camera_speed=12.0),
}


@dataclass
class LayerMotion:
    """Parameters of one layer; see the module docstring for the formulas."""

    texture: int
    u0: tuple[float, float]
    c0: tuple[float, float]
    v: tuple[float, float]
    a: tuple[float, float]
    theta0: float
    omega: float
    s0: float
    rho: float
    # shape (objects only): superellipse semi-axes in texture pixels, exponent, radial perturbation
    axes: tuple[float, float] | None = None
    exponent: float = 2.0
    wobble: list[tuple[int, float, float]] = field(default_factory=list)

    def affine(self, t: float) -> np.ndarray:
        """``A(t)`` as a 2×3 matrix mapping texture coordinates to image coordinates."""
        th = self.theta0 + self.omega * t
        s = self.s0 * np.exp(self.rho * t)
        rot = s * np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
        c = np.asarray(self.c0) + np.asarray(self.v) * t + 0.5 * np.asarray(self.a) * t * t
        return np.concatenate([rot, (c - rot @ np.asarray(self.u0))[:, None]], axis=1)

    def inside(self, ux: np.ndarray, uy: np.ndarray) -> np.ndarray:
        """Shape test in texture coordinates (True everywhere for the background)."""
        if self.axes is None:
            return np.ones(ux.shape, bool)
        dx, dy = np.abs(ux - self.u0[0]) / self.axes[0], np.abs(uy - self.u0[1]) / self.axes[1]
        # The shape lies inside the box |dx|, |dy| <= 1 + Σ|amp|: evaluate the costly test only there.
        reach = 1.0 + sum(abs(amp) for _, amp, _ in self.wobble)
        out = (dx <= reach) & (dy <= reach)
        cx, cy = dx[out], dy[out]
        sx, sy = (ux[out] - self.u0[0]) / self.axes[0], (uy[out] - self.u0[1]) / self.axes[1]
        radius = (cx**self.exponent + cy**self.exponent) ** (1.0 / self.exponent)
        phi = np.arctan2(sy, sx)
        bound = np.ones_like(radius)
        for k, amp, phase in self.wobble:
            bound += amp * np.cos(k * phi + phase)
        out[out] = radius <= bound
        return out


@dataclass
class SyntheticClip:
    """A rendered clip with exact ground truth.

    Attributes:
        frames: ``[F, H, W, 3]`` uint8.
        flow: ``[F-1, H, W, 2]`` float32 forward flow.
        valid: ``[F-1, H, W]`` bool (all True: the flow is defined everywhere).
        occlusion: ``[F-1, H, W]`` bool, True where the point is hidden in frame k+1 or leaves the image.
        layer_ids: ``[F, H, W]`` int8, the visible layer (0 = background).
        layers: the sampled parameters.
    """

    frames: np.ndarray
    flow: np.ndarray
    valid: np.ndarray
    occlusion: np.ndarray
    layer_ids: np.ndarray
    layers: list[LayerMotion]
    seed: int

    def to_sample(self) -> FlowSample:
        return FlowSample(
            frames=self.frames,
            flow=self.flow,
            valid=self.valid,
            occlusion=self.occlusion,
            meta={"dataset": "synthetic", "seed": self.seed, "layers": [asdict(layer) for layer in self.layers]},
        )


@functools.lru_cache(maxsize=1)
def _skimage_data_dir() -> Path | None:
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "data"


@functools.lru_cache(maxsize=1)
def _matplotlib_data_dir() -> Path | None:
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "mpl-data" / "sample_data"


@functools.lru_cache(maxsize=len(PHOTO_FILES) + len(EXTRA_PHOTO_FILES))
def load_photo(name: str, blur: float) -> np.ndarray | None:
    """A bundled photograph as float32 RGB ``[H, W, 3]`` in 0..255 (read-only), or None if unavailable.
    ``name`` is a file of scikit-image's data folder, or ``matplotlib:FILE`` for matplotlib's sample data."""
    package, _, file = name.rpartition(":")
    folder = _matplotlib_data_dir() if package == "matplotlib" else _skimage_data_dir()
    if folder is None or not (folder / file).is_file():
        return None
    img = cv2.imread(str(folder / file), cv2.IMREAD_COLOR)
    if img is None:
        return None
    img = np.ascontiguousarray(img[:, :, ::-1]).astype(np.float32)
    if blur > 0:
        img = cv2.GaussianBlur(img, (0, 0), blur)
    img.setflags(write=False)
    return img


def available_photos(blur: float = 0.7, photos: str = "classic") -> list[str]:
    names = PHOTO_FILES + (EXTRA_PHOTO_FILES if photos == "all" else ())
    return [n for n in names if load_photo(n, blur) is not None]


def procedural_texture(rng: np.random.Generator, size: int = 384, blur: float = 0.7) -> np.ndarray:
    """Coloured multi-octave value noise, optionally with stripes or checks; float32 ``[size, size, 3]``."""
    acc = np.zeros((size, size), np.float32)
    amp, total = 1.0, 0.0
    for cells in (4, 8, 16, 32, 64):
        grid = rng.random((cells, cells)).astype(np.float32)
        acc += amp * cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= rng.uniform(0.45, 0.75)
    acc /= total
    kind = rng.integers(3)
    if kind == 1:  # stripes
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        ang, period = rng.uniform(0, np.pi), rng.uniform(6, 24)
        acc = 0.6 * acc + 0.4 * (0.5 + 0.5 * np.sin(2 * np.pi * (xx * np.cos(ang) + yy * np.sin(ang)) / period))
    elif kind == 2:  # checks
        yy, xx = np.mgrid[0:size, 0:size]
        period = int(rng.integers(8, 32))
        acc = 0.6 * acc + 0.4 * (((yy // period) + (xx // period)) % 2).astype(np.float32)
    lo, hi = float(acc.min()), float(acc.max())
    acc = (acc - lo) / max(hi - lo, 1e-6)
    stops = rng.uniform(0, 255, size=(3, 3)).astype(np.float32)  # colour gradient through 3 stops
    tex = np.where(
        acc[..., None] < 0.5,
        stops[0] + (stops[1] - stops[0]) * (2 * acc[..., None]),
        stops[1] + (stops[2] - stops[1]) * (2 * acc[..., None] - 1),
    ).astype(np.float32)
    return cv2.GaussianBlur(tex, (0, 0), blur) if blur > 0 else tex


def _sample_layers(cfg: SyntheticConfig, rng: np.random.Generator) -> tuple[list[LayerMotion], list[np.ndarray]]:
    photos = available_photos(cfg.texture_blur, cfg.photos)
    textures: list[np.ndarray] = []

    def new_texture() -> int:
        if photos and rng.random() < cfg.photo_probability:
            tex = load_photo(photos[int(rng.integers(len(photos)))], cfg.texture_blur)
            if rng.random() < 0.5:
                tex = tex[:, ::-1]
        else:
            tex = procedural_texture(rng, blur=cfg.texture_blur)
        textures.append(np.ascontiguousarray(tex))
        return len(textures) - 1

    h, w = cfg.height, cfg.width
    deg = np.pi / 180.0

    def uniform2(bound: float) -> tuple[float, float]:
        return tuple(float(x) for x in rng.uniform(-bound, bound, 2))  # type: ignore[return-value]

    layers = []
    # Background: covers the frame (the texture is mirrored beyond its border) and moves like a camera.
    ti = new_texture()
    th, tw = textures[ti].shape[:2]
    s0 = max(h, w) / min(th, tw) * rng.uniform(1.0, 1.6)
    layers.append(
        LayerMotion(
            texture=ti,
            u0=(tw / 2 + rng.uniform(-0.1, 0.1) * tw, th / 2 + rng.uniform(-0.1, 0.1) * th),
            c0=(w / 2, h / 2),
            v=uniform2(cfg.camera_speed),
            a=uniform2(cfg.camera_speed * 0.1),
            theta0=float(rng.uniform(-10, 10) * deg),
            omega=float(rng.uniform(-cfg.camera_rotation, cfg.camera_rotation) * deg),
            s0=float(s0),
            rho=float(rng.uniform(-cfg.camera_zoom, cfg.camera_zoom)),
        )
    )
    n_obj = int(rng.integers(cfg.num_objects[0], cfg.num_objects[1] + 1))
    for _ in range(n_obj):
        ti = new_texture()
        th, tw = textures[ti].shape[:2]
        s0 = float(rng.uniform(0.8, 1.5))
        radius = rng.uniform(*cfg.object_radius) * min(h, w)
        aspect = rng.uniform(0.6, 1.0)
        axes = (radius / s0, radius * aspect / s0)
        if rng.random() < 0.5:
            axes = axes[::-1]
        wobble = [
            (int(k), float(rng.uniform(0, 0.18)), float(rng.uniform(0, 2 * np.pi)))
            for k in rng.choice([2, 3, 4, 5], size=2, replace=False)
        ]
        layers.append(
            LayerMotion(
                texture=ti,
                u0=(float(rng.uniform(0.3, 0.7) * tw), float(rng.uniform(0.3, 0.7) * th)),
                c0=(float(rng.uniform(0.15, 0.85) * w), float(rng.uniform(0.15, 0.85) * h)),
                v=uniform2(cfg.object_speed),
                a=uniform2(cfg.object_accel),
                theta0=float(rng.uniform(-np.pi, np.pi)),
                omega=float(rng.uniform(-cfg.object_rotation, cfg.object_rotation) * deg),
                s0=s0,
                rho=float(rng.uniform(-cfg.object_zoom, cfg.object_zoom)),
                axes=(float(axes[0]), float(axes[1])),
                exponent=float(rng.uniform(1.6, 5.0)),
                wobble=wobble,
            )
        )
    return layers, textures


def _apply(m: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return m[0, 0] * x + m[0, 1] * y + m[0, 2], m[1, 0] * x + m[1, 1] * y + m[1, 2]


def _invert(m: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(m.astype(np.float64))


def _visible_layer(layers: list[LayerMotion], t: float, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Front-most layer index covering image points (x, y) at time t."""
    ids = np.zeros(x.shape, np.int8)
    for li, layer in enumerate(layers[1:], start=1):
        ux, uy = _apply(_invert(layer.affine(t)), x, y)
        ids[layer.inside(ux, uy)] = li
    return ids


def render_clip(config: SyntheticConfig | str = "default", seed: int = 0) -> SyntheticClip:
    """Render one clip with exact forward flow and occlusion for every consecutive pair (seeded, deterministic)."""
    cfg = SYNTHETIC_PRESETS[config] if isinstance(config, str) else config
    rng = np.random.default_rng(seed)
    layers, textures = _sample_layers(cfg, rng)
    h, w, n = cfg.height, cfg.width, cfg.num_frames
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    frames = np.empty((n, h, w, 3), np.uint8)
    ids = np.empty((n, h, w), np.int8)
    flow = np.empty((n - 1, h, w, 2), np.float32)
    occlusion = np.empty((n - 1, h, w), bool)
    for t in range(n):
        frame = np.zeros((h, w, 3), np.float32)
        idmap = np.zeros((h, w), np.int8)
        fx, fy = np.zeros((h, w)), np.zeros((h, w))
        for li, layer in enumerate(layers):
            inv = _invert(layer.affine(t))
            ux, uy = _apply(inv, xs, ys)
            cover = layer.inside(ux, uy)
            color = cv2.remap(
                textures[layer.texture],
                ux.astype(np.float32),
                uy.astype(np.float32),
                cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_REFLECT_101,
            )
            frame[cover] = color[cover]
            idmap[cover] = li
            if t + 1 < n:
                nx, ny = _apply(layer.affine(t + 1), ux, uy)
                fx[cover], fy[cover] = nx[cover] - xs[cover], ny[cover] - ys[cover]
        frames[t] = np.clip(np.rint(frame), 0, 255).astype(np.uint8)
        ids[t] = idmap
        if t + 1 < n:
            flow[t, ..., 0], flow[t, ..., 1] = fx, fy
            tx, ty = xs + fx, ys + fy
            outside = (tx < 0) | (tx > w - 1) | (ty < 0) | (ty > h - 1)
            occlusion[t] = outside | (_visible_layer(layers, t + 1, tx, ty) != idmap)
    return SyntheticClip(
        frames=frames,
        flow=flow,
        valid=np.ones((n - 1, h, w), bool),
        occlusion=occlusion,
        layer_ids=ids,
        layers=layers,
        seed=int(seed),
    )


class SyntheticClips(Sequence):
    """``length`` synthetic clips; clip ``i`` is rendered from ``SeedSequence([seed, i])`` (reproducible, order-free)."""

    name = "synthetic"

    def __init__(self, length: int, *, config: SyntheticConfig | str = "default", seed: int = 0, transform=None):
        if length < 1:
            raise ValueError(f"SyntheticClips: length (the number of clips, n) must be >= 1, got {length}")
        self.length = length
        self.config = SYNTHETIC_PRESETS[config] if isinstance(config, str) else config
        self.seed = seed
        self.transform = transform

    def __len__(self) -> int:
        return self.length

    def clip_seed(self, index: int) -> int:
        return int(np.random.SeedSequence([self.seed, index]).generate_state(1)[0])

    def __getitem__(self, index: int):  # type: ignore[override]
        if not 0 <= index < self.length:
            raise IndexError(f"synthetic: index {index} out of range for {self.length} clips")
        sample = render_clip(self.config, self.clip_seed(index)).to_sample()
        sample.meta["index"] = index
        return self.transform(sample) if self.transform else sample
