"""Flow-guided restoration: guidance, chunking with anchors, resume, the CLI's errors."""

import json

import numpy as np
import pytest
import torch

from daflow.data.video import FrameSource
from daflow.files import write_image
from daflow.models.backbone import DiffusionBackbone
from daflow.restoration import RestoreSettings, chunk_plan, restore_clip, restore_video
from daflow.restoration.guidance import MotionGuidance, PairFlows, warping_loss


@pytest.fixture(scope="module")
def backbone():
    return DiffusionBackbone.from_preset("tiny", seed=0).eval()


@pytest.fixture()
def clip_dir(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (40, 52, 3), dtype=np.uint8)
    for k in range(5):
        write_image(tmp_path / "lq" / f"frame_{k:04d}.png", np.ascontiguousarray(np.roll(base, k, axis=1)[:32, :48]))
    return tmp_path / "lq"


def test_chunk_plan_covers_every_frame_once_as_new():
    for n, c, o in [(7, 3, 1), (8, 3, 1), (2, 3, 1), (10, 4, 2), (9, 3, 0), (3, 3, 2)]:
        plan = chunk_plan(n, c, o)
        new = [i for s, count, a in plan for i in range(s + a, s + count)]
        assert new == list(range(n)), (n, c, o, plan)
        assert all(count == min(c, n) for _, count, _ in plan)


def test_guidance_step_moves_towards_the_warped_neighbour():
    z = torch.randn(3, 4, 8, 8)
    fw = torch.zeros(2, 2, 8, 8)
    flows = PairFlows(fw, -fw)
    g = MotionGuidance(flows, 0.25, latent_size=(8, 8))
    before = warping_loss(z, g.flows, g.masks)
    after_z, loss = g(z)
    assert loss == pytest.approx(float(before), rel=1e-5)
    assert warping_loss(after_z, g.flows, g.masks) < 0.5 * before
    frozen = torch.tensor([True, False, False])
    kept, _ = g(z, frozen)
    assert torch.equal(kept[0], z[0]) and not torch.equal(kept[1], z[1])
    assert MotionGuidance(flows, 0.0, latent_size=(8, 8))(z)[0] is z
    with pytest.raises(ValueError, match=">= 0"):
        MotionGuidance(flows, -1.0, latent_size=(8, 8))


def test_guidance_follows_a_directional_flow():
    base = torch.randn(1, 4, 8, 16)
    z = torch.cat([base, torch.roll(base, 2, dims=-1)])  # frame k+1 is frame k moved 2 px to the right
    fw = torch.zeros(1, 2, 8, 16)
    fw[:, 0] = 2.0
    right = MotionGuidance(PairFlows(fw, -fw), 0.25, latent_size=(8, 16))
    wrong = MotionGuidance(PairFlows(-fw, fw), 0.25, latent_size=(8, 16))
    assert warping_loss(z, right.flows, right.masks) < 1e-8  # consistent with the true flow (in-frame pixels)
    assert warping_loss(z, wrong.flows, wrong.masks) > 0.5  # and not with the opposite one
    noisy = z + 0.5 * torch.randn(z.shape, generator=torch.Generator().manual_seed(0))
    moved, before = right(noisy)
    assert warping_loss(moved, right.flows, right.masks) < 0.5 * before  # the step pulls towards the shift


def test_flows_resize_scales_values():
    fw = torch.ones(1, 2, 16, 32) * torch.tensor([4.0, 2.0]).view(1, 2, 1, 1)
    small = PairFlows(fw, -fw).resized((4, 8))
    assert small.fw.shape == (1, 2, 4, 8) and torch.allclose(small.fw[0, 0], torch.full((4, 8), 1.0))
    assert torch.allclose(small.fw[0, 1], torch.full((4, 8), 0.5))


def test_image_space_guidance_reaches_the_latents(backbone):
    z = torch.randn(2, 16, 4, 4)
    fw = torch.zeros(1, 2, 32, 32)
    g = MotionGuidance(PairFlows(fw, -fw), 1.0, space="image", vae=backbone.vae)
    moved, loss = g(z)
    assert loss > 0 and not torch.allclose(moved, z)


def test_anchors_are_kept_exactly(backbone):
    frames = np.random.default_rng(1).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    anchors = torch.randn(1, 16, 4, 4)
    out = restore_clip(backbone, frames, steps=2, anchors=anchors)
    assert torch.allclose(out[0], anchors[0]) and out.shape == (3, 16, 4, 4)


def test_restore_resumes_without_recomputing(backbone, clip_dir, tmp_path, monkeypatch):
    import daflow.restoration.diffusion as restoration
    from daflow.api import load_model

    est = load_model("dis").clip
    settings = RestoreSettings(sampler="full", guidance=0.5, flow_model="dis", steps=2, chunk=3, overlap=1)
    full = restore_video(backbone, FrameSource(clip_dir), tmp_path / "a", settings, flow_estimator=est, progress=False)
    assert full.chunks == 2 and len(list((tmp_path / "a" / "frames").glob("*.png"))) == 5
    record = json.loads((tmp_path / "a" / "restore.json").read_text())
    assert record["settings"]["guidance"] == 0.5 and record["frames"] == 5

    # interrupt after the first chunk, then resume: the finished chunk is not recomputed, the result is identical
    calls = []
    real = restoration.restore_clip

    def counting(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(restoration, "restore_clip", counting)
    with pytest.raises(KeyboardInterrupt):
        restore_video(backbone, FrameSource(clip_dir), tmp_path / "b", settings, flow_estimator=est, progress=False)
    calls.clear()
    monkeypatch.setattr(restoration, "restore_clip", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    report = restore_video(
        backbone, FrameSource(clip_dir), tmp_path / "b", settings, flow_estimator=est, progress=False
    )
    assert report.skipped == 1 and len(calls) == 1
    a, b = FrameSource(tmp_path / "a" / "frames"), FrameSource(tmp_path / "b" / "frames")
    np.testing.assert_array_equal(a.read(0, 5), b.read(0, 5))
    with pytest.raises(ValueError, match="other settings"):
        restore_video(
            backbone,
            FrameSource(clip_dir),
            tmp_path / "b",
            RestoreSettings(guidance=0.0, steps=2),
            flow_estimator=est,
            progress=False,
        )


def test_cli_restore_and_evaluate_errors(clip_dir, tmp_path, capsys):
    from daflow.cli import main

    common = [
        "restore",
        str(clip_dir),
        "-o",
        str(tmp_path / "r"),
        "--random-init",
        "--denoise-steps",
        "1",
        "--no-progress",
    ]
    assert main(common + ["--guidance", "-1"]) == 1
    assert "--guidance must be >= 0" in capsys.readouterr().err
    assert main(common + ["--flow-model", "nope"]) == 1
    assert "--flow-model 'nope' is not a known model" in capsys.readouterr().err
    assert main(common + ["--flow-model", "dis"]) == 0
    out = tmp_path / "r"
    assert len(list((out / "frames").glob("*.png"))) == 5
    assert main(["evaluate-restoration", str(out), "--reference", str(clip_dir), "-o", str(tmp_path / "e.json")]) == 0
    result = json.loads((tmp_path / "e.json").read_text())
    assert result["ewarp_star"] > 0 and result["psnr"] is not None and result["flow_from"] == "reference"
    short = tmp_path / "short"
    for k in range(3):
        write_image(short / f"f_{k}.png", np.zeros((32, 48, 3), np.uint8))
    assert main(["evaluate-restoration", str(out), "--reference", str(short)]) == 1
    assert "has 3 frames but" in capsys.readouterr().err
    small = tmp_path / "small"
    for k in range(5):
        write_image(small / f"f_{k}.png", np.zeros((16, 16, 3), np.uint8))
    assert main(["evaluate-restoration", str(out), "--reference", str(small)]) == 1
    assert "must match" in capsys.readouterr().err


def test_a_video_input_gives_a_video_back(tmp_path):
    from daflow.cli import main
    from daflow.data.video import FrameSource, write_video

    frames = np.random.default_rng(4).integers(0, 256, (4, 32, 48, 3), dtype=np.uint8)
    write_video(tmp_path / "in.mp4", frames)
    out = tmp_path / "r"
    assert (
        main(
            [
                "restore",
                str(tmp_path / "in.mp4"),
                "-o",
                str(out),
                "--random-init",
                "--denoise-steps",
                "1",
                "--guidance",
                "0",
                "--no-prefilter",
                "--no-progress",
            ]
        )
        == 0
    )
    video = FrameSource(out / "restored.mp4")
    assert len(video) == 4 and video.read(0, 1).shape == (1, 32, 48, 3)
    assert json.loads((out / "restore.json").read_text())["frames"] == 4


def test_cli_defaults_are_the_library_defaults(clip_dir, tmp_path, monkeypatch):
    """`daflow restore IN -o OUT` with no flags restores with exactly ``RestoreSettings()``."""
    import daflow.restoration as restoration
    from daflow.cli import main

    seen = []

    def capture(backbone, source, out, settings, **kwargs):
        seen.append(settings)
        raise SystemExit(0)

    monkeypatch.setattr(restoration, "restore_video", capture)
    with pytest.raises(SystemExit):
        main(["restore", str(clip_dir), "-o", str(tmp_path / "r"), "--no-progress"])
    assert seen == [RestoreSettings()]
