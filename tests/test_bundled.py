"""The shipped demonstration weights: they are in the package, they load by name, and on fixed synthetic
degraded clips their EPE against the exact ground truth stays below the bounds in BENCHMARKS.md
("Small-scale reproduction"), well below zero flow. A broken loader, a changed preprocessing step
(value range, padding, VAE scaling, tap order) or a corrupted file moves the EPE far above these bounds."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

import daflow
from daflow.models import bundled

SEEDS = (7000, 7001, 7002, 7003)  # fixed 128×128 clips, none of them in the recipe's training or held-out sets
# mean EPE over SEEDS as BENCHMARKS.md records it, with a 10% margin for arithmetic that differs
# between CPUs; and the zero-flow EPE of the same pairs, for scale
MEASURED = {"zero": 3.1650, "daflow-tiny": 2.6941, "raft-star-tiny": 2.6118}  # DIS on the same LQ pairs: 3.131
MARGIN = 1.10


@pytest.fixture(scope="module")
def clips():
    from daflow.data.degrade import degrade_clip, sample_params
    from daflow.data.synthetic import SYNTHETIC_PRESETS, render_clip

    cfg = dataclasses.replace(SYNTHETIC_PRESETS["default"], height=128, width=128, num_frames=3)
    out = []
    for seed in SEEDS:
        clip = render_clip(cfg, seed)
        lq = degrade_clip(clip.frames, sample_params("realbasicvsr", 3, (128, 128), seed))
        out.append((torch.from_numpy(lq).permute(0, 3, 1, 2).float(), clip.flow))
    return out


def _mean_epe(flows, clips) -> float:
    from daflow.flow.metrics import flow_metrics

    return float(
        np.mean([flow_metrics(f, gt[k])["epe"] for fs, (_, gt) in zip(flows, clips) for k, f in enumerate(fs)])
    )


def test_the_weights_ship_with_their_provenance():
    assert bundled.available(), f"the bundled weights are missing from {bundled.BUNDLE_DIR}"
    record = bundled.provenance()
    assert record["command"].startswith("daflow train recipe tiny")
    assert record["recipe"]["config"]["seed"] == 0 and "DA-Flow" in record["scores"] and "RAFT*" in record["scores"]
    size = sum(f.stat().st_size for f in bundled.BUNDLE_DIR.rglob("*") if f.is_file())
    # 53 MB with DA-Flow-small, whose transformer/ and vae/ are copies of the restorer's (its layout is daflow-tiny's)
    assert size < 60e6, f"the bundle is {size / 1e6:.1f} MB; keep it to a few tens of MB"
    config = json.loads((bundled.BUNDLE_DIR / "daflow-tiny" / "config.json").read_text())
    assert len(config["blocks"]) == 4


def test_zero_flow_reference(clips):
    zero = _mean_epe([[np.zeros_like(f) for f in gt] for _, gt in clips], clips)
    assert zero == pytest.approx(MEASURED["zero"], abs=1e-3)  # the clips themselves have not changed


def test_daflow_tiny_beats_its_bound(clips):
    model = daflow.load_model("daflow-tiny")  # single-step mode: one DiT call per 3-frame clip
    flows = [model(frames.permute(0, 2, 3, 1).to(torch.uint8).numpy()) for frames, _ in clips]
    epe = _mean_epe(flows, clips)
    assert epe < MARGIN * MEASURED["daflow-tiny"], epe
    assert epe < 0.9 * MEASURED["zero"], epe


def test_raft_star_tiny_beats_its_bound(clips):
    star = daflow.load_model("raft-star-tiny").pairs  # by name, as the CLI does
    with torch.no_grad():
        flows = [
            [star(frames[k : k + 1], frames[k + 1 : k + 2])[0].permute(1, 2, 0).numpy() for k in range(2)]
            for frames, _ in clips
        ]
    epe = _mean_epe(flows, clips)
    assert epe < MARGIN * MEASURED["raft-star-tiny"], epe
    assert epe < 0.9 * MEASURED["zero"], epe


def test_demo_with_the_shipped_weights(tmp_path, capsys):
    from daflow.cli import main

    assert main(["demo", "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| DIS->RAFT (default) (LQ) |" in out and "| DA-Flow-tiny (LQ) |" in out and "| RAFT*-tiny (LQ) |" in out
    assert "| DA-Flow-small (LQ) |" in out  # the demo shows DA-Flow on the refiner beside the default
    assert (tmp_path / "demo.png").stat().st_size > 10_000
    record = json.loads((tmp_path / "metrics.json").read_text())
    metrics = record["metrics"]
    assert record["default"]["command"].startswith("daflow train refine")
    # the demo's clip has real-size motion (up to 24 px a frame): the default must beat DIS and zero flow on it
    assert metrics["DIS->RAFT (default) (LQ)"]["epe"] < metrics["DIS (LQ)"]["epe"] < metrics["zero flow"]["epe"]


def _restoration_clip(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(HQ, LQ) ``[3, 128, 128, 3]`` of one held-out clip of ``benchmarks/restoration.py``."""
    from daflow.data.degrade import degrade_clip, sample_params
    from daflow.data.synthetic import SYNTHETIC_PRESETS, render_clip

    cfg = dataclasses.replace(SYNTHETIC_PRESETS["tiny"], height=128, width=128, num_frames=3)
    hq = render_clip(cfg, seed).frames
    return hq, degrade_clip(hq, sample_params("realbasicvsr", 3, (128, 128), seed))


def _tensor(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float()


def test_the_shipped_restorer_reconstructs_and_loads():
    """The bundled tiny restorer (``daflow train recipe restore``): its VAE reconstructs held-out clean frames well
    above the degraded input's PSNR (25.7 dB against 19.7 dB in BENCHMARKS.md, "Flow-guided restoration"); a broken
    file or loader falls far below."""
    from daflow.models.vae import decode, encode

    backbone = bundled.load_restorer()
    assert backbone.origin == f"bundled:{bundled.RESTORER}"
    record = bundled.provenance(bundled.BUNDLE_DIR / bundled.RESTORER)
    assert record["command"].startswith("daflow train recipe restore")
    hq, lq = _restoration_clip(8101)
    with torch.no_grad():
        recon = decode(backbone.vae, encode(backbone.vae, _tensor(hq)))
    recon = recon.clamp(0, 255).round().permute(0, 2, 3, 1).numpy()

    def psnr(a, b):
        return 10 * np.log10(255**2 / np.mean((a.astype(np.float64) - b) ** 2))

    assert psnr(recon, hq) > psnr(lq, hq) + 3, (psnr(recon, hq), psnr(lq, hq))


def test_the_shipped_restorer_improves_its_input(tmp_path):
    """``daflow restore`` with no flags (the bundled restorer: temporal prefilter, one-step DiT, video fidelity head,
    dis-raft flow) gives back frames closer to the clean clip than its input, and no more flicker, on held-out clips
    regenerated here: two synthetic scenes and a real photograph pair (scikit-image's motorcycle stereo pair)
    ``realbasicvsr``, and the same real pair through H.264 alone at ~60 bytes a frame (real codec damage)."""
    from daflow.data.video import FrameSource
    from daflow.files import write_image
    from daflow.models.classical import classical_flow
    from daflow.restoration import RestoreSettings, restore_video
    from daflow.restoration.consistency import ewarp, psnr, ssim
    from held_out import motorcycle

    backbone = bundled.load_restorer()
    assert backbone.one_step_sigma is not None and backbone.fidelity is not None and backbone.gate is not None
    flow_model = daflow.load_model("dis-raft")
    clean, lq, _, _ = motorcycle("realbasicvsr")
    codec_clean, codec_lq, _, _ = motorcycle("codec")
    clips = [_restoration_clip(8101), _restoration_clip(8102), (clean, lq), (codec_clean, codec_lq)]
    for k, (hq, lq) in enumerate(clips):
        for i, frame in enumerate(lq):
            write_image(tmp_path / f"lq{k}" / f"frame_{i:04d}.png", frame)
        restore_video(
            backbone,
            FrameSource(tmp_path / f"lq{k}"),
            tmp_path / f"out{k}",
            RestoreSettings(),
            flow_estimator=flow_model.clip,
            progress=False,
        )
        out = FrameSource(tmp_path / f"out{k}" / "frames").read(0, len(lq))
        fw = np.stack([classical_flow(hq[i], hq[i + 1]) for i in range(len(hq) - 1)])
        bw = np.stack([classical_flow(hq[i + 1], hq[i]) for i in range(len(hq) - 1)])
        assert psnr(out, hq) > psnr(lq, hq), (k, psnr(out, hq), psnr(lq, hq))
        assert ssim(out, hq) > ssim(lq, hq), (k, ssim(out, hq), ssim(lq, hq))
        assert ewarp(out, fw, bw) <= ewarp(lq, fw, bw), k
