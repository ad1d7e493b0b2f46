"""Held-out checks of the bundled default flow model: large-motion synthetic clips never trained on, and a
real stereo pair with ground truth.

- :func:`held_out_clip`: the ``large-motion`` scene preset (objects up to 24 px, camera up to 12 px a frame) with
  the seeds :data:`SEEDS` at any size, 4 frames, degraded with a named preset. The training mixture of
  :mod:`daflow.train.mixture` draws its scenes differently and from other seeds.
- :func:`motion_evidence`: how much of the difference between consecutive degraded frames the true flow explains.
  A clip whose true motion explains almost none of it (below :data:`MIN_MOTION_EVIDENCE`) carries no evidence of
  its motion in the degraded frames (a periodic texture aliased by the downscale, say): no method that matches the
  frames can find it there, and zero flow wins by default. The bar "below zero flow on every clip" is checked on the
  clips with evidence.
- :func:`motorcycle`: scikit-image's motorcycle stereo pair (a real camera, ground-truth disparity ``d``; as flow
  left → right, ``(−d, 0)``), at half size (370×250) degraded with ``realbasicvsr`` seed 0, or at 176×144 squeezed
  through H.264 at 480 bits (60 bytes) a frame.

``benchmarks/default_model.py`` prints the tables of BENCHMARKS.md from these and records them in the bundled
model's ``PROVENANCE.json``; ``tests/test_default_model.py`` re-measures part of them.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from daflow.data.degrade import degrade_clip, sample_params
from daflow.data.synthetic import SYNTHETIC_PRESETS, _skimage_data_dir, render_clip

SEEDS = (9001, 9002, 9003, 9004, 9005, 9006)
# The held-out clips (realbasicvsr) range from 0.32 to 0.71; the one below is at 0.013 (0.79 on its clean frames).
MIN_MOTION_EVIDENCE = 0.1


def held_out_clip(size: tuple[int, int], seed: int, degrade: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(clean ``[4, H, W, 3]``, LQ, exact flow ``[3, H, W, 2]``) of one held-out clip."""
    cfg = dataclasses.replace(SYNTHETIC_PRESETS["large-motion"], height=size[0], width=size[1], num_frames=4)
    clip = render_clip(cfg, seed)
    lq = degrade_clip(clip.frames, sample_params(degrade, 4, size, seed))
    return clip.frames, lq, clip.flow


def motion_evidence(frames: np.ndarray, flow: np.ndarray) -> float:
    """``1 − E(flow) / E(0)`` over a clip: ``frames`` ``[F, H, W, 3]`` uint8, its true ``flow`` ``[F−1, H, W, 2]``;
    ``E(f)`` is the mean absolute difference (0..255, all pixels and channels, all pairs) between frame k and frame
    k+1 warped back with ``f`` (bilinear, border padding). 1: the flow explains every difference; 0: it explains
    no more than standing still."""
    import torch

    from daflow.flow.warp import backward_warp

    t = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    f = torch.from_numpy(np.ascontiguousarray(flow)).permute(0, 3, 1, 2).float()
    moved = (t[:-1] - backward_warp(t[1:], f, padding_mode="border")).abs().mean()
    still = (t[:-1] - t[1:]).abs().mean()
    return float(1.0 - moved / still) if still > 0 else 0.0


def motorcycle(kind: str = "realbasicvsr") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(clean ``[2, H, W, 3]``, degraded, flow ``[1, H, W, 2]``, valid ``[1, H, W]``) of the real stereo pair."""
    folder = _skimage_data_dir()
    left = cv2.imread(str(folder / "motorcycle_left.png"))[:, :, ::-1]
    right = cv2.imread(str(folder / "motorcycle_right.png"))[:, :, ::-1]
    disp = np.load(folder / "motorcycle_disp.npz")["arr_0"]
    size = (370, 250) if kind == "realbasicvsr" else (176, 144)
    s = size[0] / left.shape[1]
    clean = np.stack([cv2.resize(np.ascontiguousarray(x), size, interpolation=cv2.INTER_AREA) for x in (left, right)])
    d = cv2.resize(np.where(np.isfinite(disp), disp, 0), size, interpolation=cv2.INTER_NEAREST) * s
    finite = cv2.resize(np.isfinite(disp).astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    flow = np.stack([-d, np.zeros_like(d)], -1)[None].astype(np.float32)
    if kind == "realbasicvsr":
        lq = degrade_clip(clean, sample_params("realbasicvsr", 2, clean.shape[1:3], 0))
    else:  # real H.264 damage only: ~60 bytes a frame
        from daflow.data.degrade.ops import video_compress
        from daflow.data.degrade.params import CodecParams

        out = video_compress([f.astype(np.float32) / 255 for f in clean], CodecParams("libx264", 480))
        lq = np.stack([np.clip(np.rint(f * 255), 0, 255).astype(np.uint8) for f in out])
    return clean, lq, flow, finite[None]
