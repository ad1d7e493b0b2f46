"""The classical flow-guided temporal filter (``daflow restore --method temporal``)."""

import numpy as np
import pytest
import torch

from daflow.files import write_image
from daflow.restoration import RestoreSettings, TemporalSettings, neighbour_flows, temporal_filter
from daflow.restoration.consistency import psnr


def _static_noisy(n=7, size=(48, 64), sigma=12.0, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: size[0], : size[1]]
    clean = np.stack([128 + 60 * np.sin(xx / 5.0), 128 + 60 * np.cos(yy / 7.0), 100 + xx + 0 * yy], -1)
    clean = np.clip(clean, 0, 255).astype(np.uint8)
    clip = np.repeat(clean[None], n, 0)
    noisy = np.clip(clip + rng.normal(0, sigma, clip.shape), 0, 255).round().astype(np.uint8)
    return clip, noisy


def _zero_flow(a, b):
    return torch.zeros(a.shape[0], 2, *a.shape[-2:])


def test_static_noisy_clip_is_recovered():
    clean, noisy = _static_noisy()
    x = torch.from_numpy(noisy).permute(0, 3, 1, 2).float()
    flows = neighbour_flows(x, 2, _zero_flow)
    out = temporal_filter(noisy, flows, TemporalSettings(radius=2))
    assert out.shape == noisy.shape and out.dtype == np.uint8
    # five frames of independent noise averaged: about 10*log10(5) = 7 dB at most; robust weights keep most of it
    assert psnr(out, clean) > psnr(noisy, clean) + 4.0
    wider = temporal_filter(noisy, neighbour_flows(x, 3, _zero_flow), TemporalSettings(radius=3))
    assert psnr(wider[3:4], clean[3:4]) > psnr(out[3:4], clean[3:4])


def test_misaligned_neighbours_are_rejected():
    """Neighbours whose 'flow' points to the wrong place get small weights: the frame is kept far better than a
    plain average would keep it (at the default h), and all but untouched at a strict h = 8."""
    clean, _ = _static_noisy(n=3, sigma=0.0)
    moving = np.stack([clean[0], np.roll(clean[0], 9, axis=1), np.roll(clean[0], 18, axis=1)])
    x = torch.from_numpy(moving).permute(0, 3, 1, 2).float()
    flows = neighbour_flows(x, 1, _zero_flow)
    plain = moving.astype(np.float64).mean(0, keepdims=True).round().astype(np.uint8)
    default = temporal_filter(moving, flows, TemporalSettings(radius=1))
    assert psnr(default[1:2], moving[1:2]) > psnr(plain, moving[1:2]) + 4.0
    strict = temporal_filter(moving, flows, TemporalSettings(radius=1, strength=8.0))
    assert psnr(strict[1:2], moving[1:2]) > 30.0


def test_true_flow_aligns_a_moving_clip():
    """With the true flow, a translating noisy clip is denoised like a static one."""
    rng = np.random.default_rng(1)
    base = np.clip(128 + 50 * np.sin(np.arange(96)[None, :] / 4.0) + 0 * np.arange(48)[:, None], 0, 255)
    base = np.repeat(base[..., None], 3, -1)
    clean = np.stack([np.roll(base, 2 * k, axis=1) for k in range(5)]).astype(np.uint8)
    noisy = np.clip(clean + rng.normal(0, 10, clean.shape), 0, 255).round().astype(np.uint8)

    def true_flow(a, b):  # frames are identified by their index through the batch order of neighbour_flows
        return torch.zeros(a.shape[0], 2, *a.shape[-2:])

    x = torch.from_numpy(noisy).permute(0, 3, 1, 2).float()
    keys = neighbour_flows(x, 2, true_flow)
    flows = {(t, s): torch.stack([torch.full((48, 96), 2.0 * (s - t)), torch.zeros(48, 96)]) for t, s in keys}
    out = temporal_filter(noisy, flows, TemporalSettings(radius=2))
    inner = (slice(None), slice(None), slice(12, -12))  # away from the wrapped border
    assert psnr(out[inner], clean[inner]) > psnr(noisy[inner], clean[inner]) + 3.0


def test_settings_are_checked():
    with pytest.raises(ValueError, match="--radius must be >= 1"):
        TemporalSettings(radius=0)
    with pytest.raises(ValueError, match="--strength must be > 0"):
        RestoreSettings(method="temporal", strength=0)
    with pytest.raises(ValueError, match="--method must be one of"):
        RestoreSettings(method="median")


def test_cli_temporal_restores_and_refuses_a_chunked_flow_model(tmp_path, capsys):
    from daflow.cli import main
    from daflow.data.video import FrameSource

    clean, noisy = _static_noisy(n=5, size=(64, 64))
    for k, f in enumerate(noisy):
        write_image(tmp_path / "lq" / f"frame_{k:04d}.png", f)
    out = tmp_path / "r"
    args = ["restore", str(tmp_path / "lq"), "-o", str(out), "--method", "temporal", "--no-progress"]
    assert main(args + ["--flow-model", "dis"]) == 0
    restored = FrameSource(out / "frames").read(0, 5)
    assert psnr(restored, clean) > psnr(noisy, clean) + 3.0
    assert main(args + ["--flow-model", "dis"]) == 0  # resumes: every window is done
    assert main(["restore", str(tmp_path / "lq"), "-o", str(tmp_path / "r2"), "--method", "temporal",
                 "--flow-model", "daflow-tiny", "--no-progress"]) == 1  # fmt: skip
    assert "needs a pairwise flow model" in capsys.readouterr().err
