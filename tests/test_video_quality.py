"""No-ground-truth scoring on video: warping error, FB consistency, zero flow and DIS rows."""

import json

import numpy as np

from daflow.cli import main
from daflow.data.synthetic import SyntheticConfig, render_clip
from daflow.eval.video_quality import fb_consistent, photometric_error, visible_mask
from daflow.files import write_image


def test_warp_error_is_zero_for_the_true_shift_and_not_for_zero_flow():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (40, 60, 3)).astype(np.uint8)
    a, b = base[:, 5:45], base[:, 8:48]  # b(x) = a(x + 3): content moves 3 px left
    flow = np.zeros((40, 40, 2), np.float32)
    flow[..., 0] = -3.0
    visible = np.ones((40, 40), bool)
    assert (
        photometric_error(a, b, flow, visible) < 1e-3
    )  # bilinear sampling rounding only; in-frame pixels only: the 3 columns leaving the frame are out
    manual = np.abs(a.astype(float) - b.astype(float)).mean()
    assert abs(photometric_error(a, b, flow * 0, visible) - manual) < 1e-4
    assert fb_consistent(flow, -flow) > 90 and fb_consistent(flow, flow) < 10


def test_visible_mask_marks_occlusions_of_a_synthetic_clip():
    clip = render_clip(SyntheticConfig(height=96, width=96, num_frames=2, num_objects=(2, 2)), 5)
    vis = visible_mask(clip.frames[0], clip.frames[1])
    assert vis.shape == (96, 96) and 0.5 < vis.mean() < 1.0


def test_evaluate_video_command(tmp_path, capsys):
    clip = render_clip(SyntheticConfig(height=64, width=80, num_frames=4), 2)
    for k, f in enumerate(clip.frames):
        write_image(tmp_path / "clean" / f"frame_{k:04d}.png", f)
    assert main(["degrade", "frames", str(tmp_path / "clean"), "-o", str(tmp_path / "lq"), "--no-progress"]) == 0
    out = tmp_path / "r.json"
    spec = f"video:{tmp_path / 'lq'}?clean={tmp_path / 'clean'}"
    assert main(["evaluate", "--model", "raft-star-tiny", "--data", spec, "-o", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "| zero flow |" in text and "| DIS (input) |" in text and "| raft-star-tiny |" in text
    rec = json.loads(out.read_text())
    rows = rec["results"][0]["rows"]
    assert rec["results"][0]["pairs"] == 3 and rec["weights"] == "bundled:raft-star-tiny"
    assert rows["DIS (input)"]["warp_error"] < rows["zero flow"]["warp_error"]
    # mismatched clean frames: one line, exit 1
    assert main(["evaluate", "--model", "dis", "--data", f"video:{tmp_path / 'lq'}?clean={tmp_path / 'nope'}"]) == 1
    assert main(["evaluate", "--model", "dis", "--data", spec, "--data", "synthetic:tiny?n=1"]) == 1
