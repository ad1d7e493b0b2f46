"""Classical optical-flow references: OpenCV's DIS (Kroeger et al. 2016) and Farnebäck (2003), and zero flow.

They need no weights, so they are the honest baselines of the demo and of the small-scale reproduction.
Frames are uint8 RGB ``[H, W, 3]``; flows come back as float32 ``[H, W, 2]``.
"""

from __future__ import annotations

import cv2
import numpy as np

from daflow.models.catalog import min_input_side, names

CLASSICAL_METHODS = names("classical")
DIS_MIN_SIDE = min_input_side("dis")  # OpenCV's DIS refuses smaller images (its patch size at the medium preset)

_DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


def _grey(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected a uint8 RGB frame [H, W, 3], got {frame.dtype} {frame.shape}")
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def classical_flow(
    frame1: np.ndarray, frame2: np.ndarray, method: str = "dis", *, preset: str = "medium"
) -> np.ndarray:
    """Forward flow frame1 → frame2 by a classical method (``"dis"``, ``"farneback"``, or ``"zero"``: no motion, the
    reference every flow model must beat)."""
    if method not in CLASSICAL_METHODS:
        raise ValueError(f"classical method must be one of {CLASSICAL_METHODS}, got {method!r}")
    a, b = _grey(frame1), _grey(frame2)
    if a.shape != b.shape:
        raise ValueError(f"frames differ in size: {a.shape} vs {b.shape}")
    if method == "dis" and min(a.shape) < DIS_MIN_SIDE:
        raise ValueError(
            f"DIS needs frames of at least {DIS_MIN_SIDE}x{DIS_MIN_SIDE} pixels, got {a.shape[1]}x{a.shape[0]}"
        )
    if method == "zero":
        return np.zeros((*a.shape, 2), np.float32)
    if method == "dis":
        if preset not in _DIS_PRESETS:
            raise ValueError(f"DIS preset must be one of {tuple(_DIS_PRESETS)}, got {preset!r}")
        dis = cv2.DISOpticalFlow_create(_DIS_PRESETS[preset])
        flow = dis.calc(a, b, None)
    else:
        flow = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 5, 15, 5, 7, 1.5, 0)
    return flow.astype(np.float32)


def classical_flows(image1, image2, method: str = "dis"):
    """:func:`classical_flow` on each pair of a torch batch: ``[B, 3, H, W]`` RGB 0..255 → ``[B, 2, H, W]`` float32,
    on the input's device."""
    import torch

    out = []
    for a, b in zip(image1, image2):
        f1 = a.permute(1, 2, 0).round().clamp(0, 255).byte().cpu().numpy()
        f2 = b.permute(1, 2, 0).round().clamp(0, 255).byte().cpu().numpy()
        out.append(torch.from_numpy(np.ascontiguousarray(classical_flow(f1, f2, method))).permute(2, 0, 1))
    return torch.stack(out).to(image1.device)
