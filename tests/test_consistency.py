"""E_warp (Lai et al. 2018) against an independent, per-pixel re-implementation of the published formula."""

import numpy as np
import pytest
import torch

from daflow.restoration.consistency import ewarp, occlusion_lai, psnr, ssim


def _bilinear(img: np.ndarray, x: float, y: float) -> np.ndarray:
    """img[y, x] sampled bilinearly, zero outside (the original's grid_sample with zero padding)."""
    h, w = img.shape[:2]
    x0, y0 = int(np.floor(x)), int(np.floor(y))
    out = np.zeros(img.shape[2:])
    for yy, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
        for xx, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
            if 0 <= yy < h and 0 <= xx < w:
                out = out + wy * wx * img[yy, xx]
    return out


def _reference(frames: np.ndarray, fws: np.ndarray, bws: np.ndarray) -> tuple[float, list[np.ndarray]]:
    """The published formula, pixel by pixel (frames in [0, 1])."""
    errs, masks = [], []
    for t in range(len(frames) - 1):
        f, b, v1, v2 = fws[t], bws[t], frames[t], frames[t + 1]
        h, w = f.shape[:2]
        occ = np.zeros((h, w), bool)
        num, vis = 0.0, 0
        for y in range(h):
            for x in range(w):
                fx, fy = f[y, x]
                bt = _bilinear(b, x + fx, y + fy)
                s = (fx + bt[0]) ** 2 + (fy + bt[1]) ** 2
                fb = s > 0.01 * (fx**2 + fy**2 + bt[0] ** 2 + bt[1] ** 2) + 0.5
                du = f[y, x] - f[y, x + 1] if x + 1 < w else np.zeros(2)
                dv = f[y, x] - f[y + 1, x] if y + 1 < h else np.zeros(2)
                mb = (du**2).sum() + (dv**2).sum() > 0.01 * (fx**2 + fy**2) + 0.002
                occ[y, x] = fb or mb
                if not occ[y, x]:
                    num += ((v1[y, x] - _bilinear(v2, x + fx, y + fy)) ** 2).sum()
                    vis += 1
        errs.append(num / vis if vis else num / v1.size)
        masks.append(occ)
    return float(np.mean(errs)), masks


def _fixture(seed=0, t=3, h=9, w=11):
    rng = np.random.default_rng(seed)
    frames = rng.random((t, h, w, 3))
    fws = np.zeros((t - 1, h, w, 2))
    fws[..., 0] = 1.25  # a moving background ...
    fws[:, 3:6, 2:6] = (-0.5, 0.75)  # ... and an object with a motion boundary
    bws = -fws.copy()
    bws[:, 0:2, 0:3] = (3.0, -2.0)  # an inconsistent region: the forward-backward test fires there
    return frames, fws, bws


def test_matches_the_per_pixel_formula():
    frames, fws, bws = _fixture()
    ours = ewarp(frames, fws, bws)
    ref, masks = _reference(frames, fws, bws)
    assert ours == pytest.approx(ref, rel=1e-12, abs=1e-15)
    occ = occlusion_lai(torch.from_numpy(fws).permute(0, 3, 1, 2), torch.from_numpy(bws).permute(0, 3, 1, 2)).numpy()
    np.testing.assert_array_equal(occ, np.stack(masks))
    assert 0 < occ.mean() < 1  # both tests fire somewhere, not everywhere


def test_a_perfectly_consistent_video_scores_zero_and_uint8_is_scaled():
    base = np.random.default_rng(1).integers(0, 256, (8, 12, 3), dtype=np.uint8)
    frames = np.stack([base, np.roll(base, 1, axis=1)])  # frame 2 = frame 1 moved right by 1 px
    fw = np.zeros((1, 8, 12, 2))
    fw[..., 0] = 1.0
    assert ewarp(frames, fw, -fw) == pytest.approx(0.0, abs=1e-20)
    noisy = frames.copy()
    noisy[1] = np.clip(noisy[1].astype(int) + 20, 0, 255).astype(np.uint8)
    assert ewarp(noisy, fw, -fw) > 1e-3


def test_bad_shapes_are_refused():
    frames, fws, bws = _fixture()
    with pytest.raises(ValueError, match="flows must be"):
        ewarp(frames, fws[:1], bws[:1])
    with pytest.raises(ValueError, match="T >= 2"):
        ewarp(frames[:1], fws[:0], bws[:0])


def test_psnr_and_ssim():
    a = np.random.default_rng(2).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    assert psnr(a, a) == float("inf") and ssim(a, a) == pytest.approx(1.0)
    b = np.clip(a.astype(int) + 10, 0, 255).astype(np.uint8)
    assert 25 < psnr(a, b) < 30 and ssim(a, b) < 1.0
