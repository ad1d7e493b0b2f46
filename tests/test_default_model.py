"""The bundled default flow model, dis-raft, against the bar it was shipped for (the held-out checks of
``benchmarks/held_out.py``).

The scores recorded at bundling time live in ``weights/dis-raft/PROVENANCE.json`` (``benchmarks/default_model.py
--json`` regenerates them). The tests check that (1) the recorded scores meet the bar (``bundle`` marker, ``make
check-bundle``): on held-out large motion at
256×256 and 384×512 the default's EPE is at most 0.85× DIS's on the same degraded frames and below zero flow on
every clip whose true motion is in the degraded frames at all (``held_out.motion_evidence``); on
the real stereo pair (degraded, and squeezed through H.264) its EPE and its
warping error are below DIS's; and (2) in the default run, the recording is real: part of it is measured
again here and must agree (a broken loader, a changed preprocessing step or a corrupted file moves it far away).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from daflow.flow.metrics import flow_metrics
from daflow.models import bundled
from held_out import MIN_MOTION_EVIDENCE, SEEDS, held_out_clip, motion_evidence, motorcycle

DEFAULT = "DIS->RAFT (default)"
TOLERANCE = 0.05  # px: arithmetic differs a little between CPUs (oneDNN kernels, OpenCV's SIMD paths)


@pytest.fixture(scope="module")
def record() -> dict:
    prov = bundled.provenance(bundled.BUNDLE_DIR / bundled.REFINER)
    assert prov, f"the default model's PROVENANCE.json is missing from {bundled.BUNDLE_DIR / bundled.REFINER}"
    return prov["scores"]


@pytest.mark.bundle
@pytest.mark.parametrize("size", ["256x256", "384x512"])
def test_recorded_large_motion_scores_meet_the_bar(record, size):
    epe = record["synthetic"][f"realbasicvsr {size}"]["epe"]
    default, dis, zero = (np.asarray(epe[k]) for k in (DEFAULT, "DIS (LQ)", "zero flow"))
    assert len(default) == len(SEEDS)
    assert default.mean() <= 0.85 * dis.mean(), (default.mean(), dis.mean())
    evidence = record["synthetic"][f"realbasicvsr {size}"]["motion_evidence"]
    blind = {seed for seed, e in zip(SEEDS, evidence) if e < MIN_MOTION_EVIDENCE}
    assert len(blind) <= 1, evidence  # a held-out set of blind clips would measure nothing
    above = {seed for seed, d, z in zip(SEEDS, default, zero) if d >= z}
    assert above <= blind, (above, default, zero, evidence)


@pytest.mark.bundle
@pytest.mark.parametrize("degrade", ["codec"])
def test_recorded_codec_scores_below_zero_and_dis(record, degrade):
    for size in ("256x256", "384x512"):
        epe = record["synthetic"][f"{degrade} {size}"]["epe"]
        default, dis, zero = (np.asarray(epe[k]) for k in (DEFAULT, "DIS (LQ)", "zero flow"))
        assert default.mean() < dis.mean() and (default < zero).all(), (size, default, dis, zero)


def test_motion_evidence_of_a_known_shift_and_of_the_blind_clip(record):
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    frames = np.stack([frame, np.roll(frame, 3, axis=1)])  # content moves 3 px right
    flow = np.zeros((1, 48, 64, 2), np.float32)
    assert motion_evidence(frames, flow) == pytest.approx(0.0, abs=1e-6)
    flow[..., 0] = 3.0
    assert motion_evidence(frames, flow) > 0.9  # all but the wrapped-around border column strip
    # the recorded evidence regenerates, for the blind clip and for one with evidence
    recorded = record["synthetic"]["realbasicvsr 256x256"]["motion_evidence"]
    for i in (0, SEEDS.index(9004)):
        _, lq, gt = held_out_clip((256, 256), SEEDS[i], "realbasicvsr")
        assert motion_evidence(lq, gt) == pytest.approx(recorded[i], abs=1e-3)


@pytest.mark.bundle
def test_recorded_real_pair_scores(record):
    for kind in ("realbasicvsr", "h264-480bits"):
        real = record["real"][kind]
        assert real[DEFAULT]["epe"] < real["DIS (LQ)"]["epe"] < real["zero flow"]["epe"], kind
        assert real[DEFAULT]["warp_error"] < real["DIS (LQ)"]["warp_error"] < real["zero flow"]["warp_error"], kind


def _flows(model, lq: np.ndarray) -> np.ndarray:
    t = torch.from_numpy(lq).permute(0, 3, 1, 2).float()
    return model(t[:-1], t[1:]).permute(0, 2, 3, 1).numpy()


def test_the_recording_regenerates(record):
    from daflow.api import load_model

    model = load_model("dis-raft").pairs  # by name, as `daflow estimate` does by default
    recorded = record["synthetic"]["realbasicvsr 256x256"]["epe"][DEFAULT]
    for i, seed in enumerate(SEEDS[:2]):
        _, lq, gt = held_out_clip((256, 256), seed, "realbasicvsr")
        f = _flows(model, lq)
        epe = float(np.mean([flow_metrics(f[k], gt[k])["epe"] for k in range(len(gt))]))
        assert epe == pytest.approx(recorded[i], abs=TOLERANCE), (seed, epe, recorded[i])
    clean, lq, gt, valid = motorcycle("realbasicvsr")
    f = _flows(model, lq)
    epe = float(np.linalg.norm(f[0] - gt[0], axis=-1)[valid[0]].mean())
    assert epe == pytest.approx(record["real"]["realbasicvsr"][DEFAULT]["epe"], abs=TOLERANCE)
