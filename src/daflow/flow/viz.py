"""Flow visualisation: the Baker et al. (Middlebury) colour wheel, error maps and side-by-side panels.

The colour wheel is the one of Baker et al., "A Database and Evaluation Methodology for Optical Flow"
(IJCV 2011): 55 hues in six ramps (red→yellow 15, yellow→green 6, green→cyan 4, cyan→blue 11,
blue→magenta 13, magenta→red 6); hue is the flow direction, saturation its magnitude over a normaliser.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import cv2
import numpy as np
import torch

from daflow.files import write_image

_RAMPS = (15, 6, 4, 11, 13, 6)  # RY, YG, GC, CB, BM, MR


def make_colorwheel() -> np.ndarray:
    """The 55×3 Middlebury colour wheel, float64 values in 0..255."""
    ry, yg, gc, cb, bm, mr = _RAMPS
    wheel = np.zeros((sum(_RAMPS), 3))
    col = 0
    for length, fixed, rising, falling in (
        (ry, 0, 1, None),  # R = 255, G rises
        (yg, 1, None, 0),  # G = 255, R falls
        (gc, 1, 2, None),  # G = 255, B rises
        (cb, 2, None, 1),  # B = 255, G falls
        (bm, 2, 0, None),  # B = 255, R rises
        (mr, 0, None, 2),  # R = 255, B falls
    ):
        ramp = np.floor(255 * np.arange(length) / length)
        wheel[col : col + length, fixed] = 255
        if rising is not None:
            wheel[col : col + length, rising] = ramp
        else:
            wheel[col : col + length, falling] = 255 - ramp
        col += length
    return wheel


_WHEEL = make_colorwheel()


def _to_hw2(flow) -> np.ndarray:
    if isinstance(flow, torch.Tensor):
        flow = flow.detach().cpu().float().numpy()
        if flow.ndim == 3 and flow.shape[0] == 2:
            flow = flow.transpose(1, 2, 0)
    flow = np.asarray(flow, dtype=np.float64)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow_to_color expects [H, W, 2] (numpy) or [2, H, W] (torch), got {flow.shape}")
    return flow


def flow_to_color(flow, *, max_flow: float | None = None, valid: np.ndarray | None = None) -> np.ndarray:
    """Colour-code a flow field as uint8 RGB ``[H, W, 3]``.

    Args:
        flow: numpy ``[H, W, 2]`` or torch ``[2, H, W]``.
        max_flow: fixed normaliser in pixels (the same for every image, so colours are comparable); None
            normalises per image by the largest valid magnitude.
        valid: optional ``[H, W]`` bool; invalid and non-finite pixels are drawn black.
    """
    f = _to_hw2(flow)
    ok = np.isfinite(f).all(-1)
    if valid is not None:
        ok &= np.asarray(valid, bool)
    f = np.where(ok[..., None], f, 0.0)
    u, v = f[..., 0], f[..., 1]
    rad = np.sqrt(u * u + v * v)
    if max_flow is None:
        norm = float(rad[ok].max()) if ok.any() else 1.0
    else:
        if max_flow <= 0:
            raise ValueError(f"max_flow must be positive, got {max_flow}")
        norm = float(max_flow)
    rad = rad / max(norm, np.finfo(np.float64).eps)
    ncols = _WHEEL.shape[0]
    angle = np.arctan2(-v, -u) / np.pi
    fk = (angle + 1) / 2 * (ncols - 1)
    k0 = np.floor(fk).astype(np.int64)
    k1 = (k0 + 1) % ncols
    frac = (fk - k0)[..., None]
    col = ((1 - frac) * _WHEEL[k0] + frac * _WHEEL[k1]) / 255.0
    inside = (rad <= 1)[..., None]
    col = np.where(inside, 1 - rad[..., None] * (1 - col), col * 0.75)
    out = np.floor(255 * col).astype(np.uint8)
    out[~ok] = 0
    return out


def error_to_color(error: np.ndarray, *, max_error: float | None = 10.0, valid: np.ndarray | None = None) -> np.ndarray:
    """Colour-code a per-pixel error map ``[H, W]`` (e.g. end-point error) with the inferno map; black = invalid."""
    e = np.asarray(error, dtype=np.float64)
    ok = np.isfinite(e) if valid is None else np.isfinite(e) & np.asarray(valid, bool)
    top = float(e[ok].max()) if (max_error is None and ok.any()) else (max_error or 1.0)
    scaled = np.clip(np.where(ok, e, 0.0) / max(top, 1e-12), 0, 1)
    bgr = cv2.applyColorMap(np.round(scaled * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)
    out = np.ascontiguousarray(bgr[:, :, ::-1])
    out[~ok] = 0
    return out


def _as_rgb_tile(image: np.ndarray, height: int) -> np.ndarray:
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise ValueError(f"panel tiles must be uint8 images, got {img.dtype}")
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"panel tiles must be [H, W, 3] or [H, W], got {img.shape}")
    if img.shape[0] != height:
        width = max(1, round(img.shape[1] * height / img.shape[0]))
        img = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)
    return img


def make_panel(
    tiles: Sequence[tuple[str, np.ndarray]], *, ncols: int | None = None, height: int | None = None
) -> np.ndarray:
    """Lay out titled tiles in a grid; returns uint8 RGB.

    Args:
        tiles: ``(title, image)`` pairs; images uint8 RGB ``[H, W, 3]`` or grey ``[H, W]``.
        ncols: tiles per row (default: all in one row).
        height: tile height in pixels (default: the first tile's); tiles are resized to it.
    """
    if not tiles:
        raise ValueError("make_panel needs at least one tile")
    h = int(height or np.asarray(tiles[0][1]).shape[0])
    imgs = [_as_rgb_tile(img, h) for _, img in tiles]
    ncols = ncols or len(imgs)
    w = max(img.shape[1] for img in imgs)
    bar = max(14, h // 14)
    scale = bar / 30.0
    rows = []
    for r in range(0, len(imgs), ncols):
        row = []
        for c in range(ncols):
            cell = np.full((h + bar, w, 3), 255, np.uint8)
            k = r + c
            if k < len(imgs):
                cell[bar:, : imgs[k].shape[1]] = imgs[k]
                cv2.putText(
                    cell, tiles[k][0], (3, int(bar * 0.78)), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA
                )
            row.append(cell)
        rows.append(np.concatenate(row, axis=1))
    return np.concatenate(rows, axis=0)


def write_panel(path: str | os.PathLike[str], tiles: Sequence[tuple[str, np.ndarray]], **kwargs) -> None:
    """:func:`make_panel` then an atomic image write (format by extension)."""
    write_image(path, make_panel(tiles, **kwargs))


def flow_panel_tiles(
    frame1: np.ndarray,
    frame2: np.ndarray,
    flows: dict[str, np.ndarray],
    *,
    gt: np.ndarray | None = None,
    valid: np.ndarray | None = None,
    max_error: float = 10.0,
    frame_titles: tuple[str, str] = ("frame k", "frame k+1"),
) -> list[tuple[str, np.ndarray]]:
    """The standard tiles shown by every command: both frames, ground truth, each estimate and its error map
    (endpoint error, colours saturating at ``max_error`` px; titled "<name> err" to fit a tile).

    Flows are numpy ``[H, W, 2]``; all flow tiles share one normaliser (the ground truth's largest
    magnitude, else the largest estimate's) so their colours are comparable.
    """
    tiles: list[tuple[str, np.ndarray]] = [(frame_titles[0], frame1), (frame_titles[1], frame2)]
    ref = gt if gt is not None else next(iter(flows.values()), None)
    norm = None
    if ref is not None:
        mag = np.linalg.norm(np.nan_to_num(np.asarray(ref, np.float64)), axis=-1)
        norm = float(mag.max()) if mag.size and mag.max() > 0 else 1.0
    if gt is not None:
        tiles.append(("ground truth", flow_to_color(gt, max_flow=norm, valid=valid)))
    for name, f in flows.items():
        tiles.append((name, flow_to_color(f, max_flow=norm)))
        if gt is not None:
            err = np.linalg.norm(np.asarray(f, np.float64) - np.nan_to_num(np.asarray(gt, np.float64)), axis=-1)
            tiles.append((f"{name} err", error_to_color(err, max_error=max_error, valid=valid)))
    return tiles
