"""Temporal consistency of a restored video: the warping error E_warp (Lai et al. 2018), PSNR and SSIM.

The definition of the video-consistency literature (Lai et al., "Learning Blind Video Temporal Consistency",
ECCV 2018, ``fast_blind_video_consistency/evaluate_WarpError.py``), used by MGLD, Upscale-A-Video and DA-Flow's
restoration table (paper App. C.4, Table 6). Frames ``V_t`` are RGB in [0, 1]. For each consecutive pair, the
forward flow ``f`` (t → t+1) and backward flow ``b`` (t+1 → t) of a *reference* video give the occlusion mask
``O_t`` on frame t's grid, true where either test fires:

    forward–backward:  |f + b̃|² > 0.01·(|f|² + |b̃|²) + 0.5,      b̃(x) = b(x + f(x))  (bilinear, zeros outside)
    motion boundary:   |∇f_x|² + |∇f_y|² > 0.01·|f|² + 0.002     (forward differences, last row / column 0)

and, with ``M_t = 1 − O_t`` and ``Ŵ(V_{t+1})(x) = V_{t+1}(x + f(x))``,

    E_warp = 1/(T−1) · Σ_t  Σ_{x,c} M_t(x)·(V_t(x, c) − Ŵ(V_{t+1})(x, c))²  /  Σ_x M_t(x)

(squared error summed over channels, divided by the visible pixels; a pair with no visible pixel divides by
H·W·C, as the original does). Reported as **E*_warp = E_warp × 10³** (Table 6's unit).

The flow comes from a chosen estimator (any ``daflow evaluate`` model) run on the reference video: the HQ video
when there is one (so every restoration is scored on the same pixels), else the video being scored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from daflow.flow.metrics import pair_warp_error
from daflow.flow.warp import backward_warp

ALPHA, BETA = 0.01, 0.5  # forward–backward test (squared magnitudes), Lai et al.
BOUNDARY_ALPHA, BOUNDARY_BETA = 0.01, 0.002  # motion-boundary test


def _mag2(flow: torch.Tensor) -> torch.Tensor:
    return (flow**2).sum(1)


def occlusion_lai(flow_fw: torch.Tensor, flow_bw: torch.Tensor) -> torch.Tensor:
    """Lai et al.'s occlusion mask ``[B, H, W]`` (True = occluded) from flows ``[B, 2, H, W]`` (t→t+1, t+1→t)."""
    if flow_fw.shape != flow_bw.shape or flow_fw.ndim != 4 or flow_fw.shape[1] != 2:
        raise ValueError(f"flows must both be [B, 2, H, W], got {tuple(flow_fw.shape)} and {tuple(flow_bw.shape)}")
    bw_warped = backward_warp(flow_bw, flow_fw)
    fb = _mag2(flow_fw + bw_warped) > ALPHA * (_mag2(flow_fw) + _mag2(bw_warped)) + BETA
    du = torch.zeros_like(flow_fw)
    dv = torch.zeros_like(flow_fw)
    du[..., :, :-1] = flow_fw[..., :, :-1] - flow_fw[..., :, 1:]
    dv[..., :-1, :] = flow_fw[..., :-1, :] - flow_fw[..., 1:, :]
    boundary = (du**2 + dv**2).sum(1) > BOUNDARY_ALPHA * _mag2(flow_fw) + BOUNDARY_BETA
    return fb | boundary


def ewarp(frames: np.ndarray, flows_fw: np.ndarray, flows_bw: np.ndarray) -> float:
    """E_warp of one video: ``frames`` ``[T, H, W, 3]`` (uint8, or float in [0, 1]); flows ``[T−1, H, W, 2]`` of the
    reference video (forward t→t+1 and backward t+1→t)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) < 2:
        raise ValueError(f"frames must be [T, H, W, 3] with T >= 2, got {frames.shape}")
    if flows_fw.shape != (len(frames) - 1, *frames.shape[1:3], 2) or flows_bw.shape != flows_fw.shape:
        raise ValueError(
            f"flows must be [{len(frames) - 1}, {frames.shape[1]}, {frames.shape[2]}, 2] for frames "
            f"{frames.shape}, got {flows_fw.shape} and {flows_bw.shape}"
        )
    x = torch.from_numpy(frames.astype(np.float64) / 255.0 if frames.dtype == np.uint8 else frames.astype(np.float64))
    x = x.permute(0, 3, 1, 2)
    fw = torch.from_numpy(flows_fw.astype(np.float64)).permute(0, 3, 1, 2)
    bw = torch.from_numpy(flows_bw.astype(np.float64)).permute(0, 3, 1, 2)
    occ = occlusion_lai(fw, bw)
    return float(pair_warp_error(x[:-1], x[1:], fw, ~occ).mean())


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (dB) of uint8 frames ``[..., H, W, 3]`` (peak 255) over all their values."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004: Gaussian window σ = 1.5, K1 = 0.01, K2 = 0.03) over frames ``[T, H, W, 3]``,
    computed per RGB channel (scikit-image's ``structural_similarity`` with ``gaussian_weights``)."""
    from skimage.metrics import structural_similarity

    return float(
        np.mean(
            [
                structural_similarity(
                    x, y, channel_axis=-1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
                )
                for x, y in zip(a, b)
            ]
        )
    )


@dataclass
class ConsistencyResult:
    """``ewarp_star`` (E_warp × 10³), and ``psnr`` / ``ssim`` against the HQ reference when one was given."""

    ewarp_star: float
    psnr: float | None = None
    ssim: float | None = None
    frames: int = 0
    flow_model: str = ""
    flow_from: str = ""

    def to_dict(self) -> dict:
        return dict(self.__dict__)
