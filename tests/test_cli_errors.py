"""What a new user hit: one-line errors with exit code 1, nothing half written, readable files,
frame ranges, thread control, model provenance in estimate.json."""

import json
import os
import stat

import numpy as np
import pytest
import torch

from daflow import cli
from daflow.cli import main
from daflow.data.synthetic import SyntheticConfig, render_clip
from daflow.files import write_image
from daflow.flow.io import read_flow, write_flow


def _frames(folder, n, h, w):
    for i in range(n):
        write_image(folder / f"frame_{i:04d}.png", np.full((h, w, 3), 40 * i, np.uint8))
    return folder


def _one_line_error(capsys, *needles):
    err = capsys.readouterr().err.strip().splitlines()
    last = err[-1]
    assert "Traceback" not in "\n".join(err) and last.startswith("daflow ") and ": error: " in last, err
    for n in needles:
        assert n in last, (n, last)
    return last


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_outputs_follow_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        write_image(tmp_path / "a.png", np.zeros((4, 4, 3), np.uint8))
        write_flow(tmp_path / "f.flo", np.zeros((4, 4, 2), np.float32))
    finally:
        os.umask(old)
    for name in ("a.png", "f.flo"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~mask, name


def test_viz_to_an_unknown_image_extension(tmp_path, capsys):
    write_flow(tmp_path / "f.flo", np.ones((8, 8, 2), np.float32))
    assert main(["viz", str(tmp_path / "f.flo"), "-o", str(tmp_path / "out.txt")]) == 1
    _one_line_error(capsys, "out.txt", ".txt")
    assert not list(tmp_path.glob("*out*"))


def test_estimate_frames_too_small_for_the_model(tmp_path, capsys):
    tiny = _frames(tmp_path / "tiny", 3, 8, 8)
    assert main(["estimate", str(tiny), "-o", str(tmp_path / "o"), "--model", "dis"]) == 1
    _one_line_error(capsys, "8x8", "dis", "12")
    small = _frames(tmp_path / "small", 3, 37, 53)
    for model in ("raft-star-tiny", "daflow-tiny", "raft"):
        assert main(["estimate", str(small), "-o", str(tmp_path / "o"), "--model", model]) == 1
        _one_line_error(capsys, "53x37", model)  # the user's own size, checked before any model is loaded
    assert not (tmp_path / "o").exists()  # a failed run leaves no folder behind


def test_estimate_bad_output_and_bad_options(tmp_path, capsys):
    frames = _frames(tmp_path / "f", 3, 64, 64)
    (tmp_path / "file").write_text("x")
    assert main(["estimate", str(frames), "-o", str(tmp_path / "file"), "--model", "dis"]) == 1
    _one_line_error(capsys, "file", "not a folder")
    assert main(["estimate", str(frames), "-o", str(tmp_path / "o"), "--model", "dis", "--scale", "-1"]) == 1
    _one_line_error(capsys, "--scale", "SEA-RAFT")
    assert main(["estimate", str(frames), "-o", str(tmp_path / "o"), "--model", "dis", "--corr", "windowed"]) == 1
    _one_line_error(capsys, "--corr")
    assert main(["estimate", str(frames), "-o", str(tmp_path / "o"), "--model", "daflow-tiny", "--random-init"]) == 1
    _one_line_error(capsys, "daflow-tiny", "bundled")
    assert (
        main(
            ["estimate", str(frames), "-o", str(tmp_path / "o"), "--model", "daflow", "--scale", "-1", "--random-init"]
        )
        == 1
    )
    _one_line_error(capsys, "--scale")
    assert main(["estimate", str(frames), "-o", str(tmp_path / "o"), "--model", "dis", "--start", "5"]) == 1
    _one_line_error(capsys, "--start 5")
    assert not (tmp_path / "o").exists()


def test_corrupted_model_config_names_the_file(tmp_path, capsys):
    from daflow.models import bundled

    bad = tmp_path / "model"
    import shutil

    shutil.copytree(bundled.BUNDLE_DIR / "daflow-tiny", bad)
    (bad / "config.json").write_text("{oops")
    frames = _frames(tmp_path / "f", 3, 64, 64)
    assert main(["estimate", str(frames), "-o", str(tmp_path / "o"), "--model", "daflow", "--weights", str(bad)]) == 1
    _one_line_error(capsys, str(bad / "config.json"))
    assert not (tmp_path / "o").exists()


def test_estimate_range_corr_and_provenance(tmp_path):
    clip = render_clip(SyntheticConfig(height=64, width=64, num_frames=6), 3)
    folder = tmp_path / "clip"
    for k, f in enumerate(clip.frames):
        write_image(folder / f"frame_{k:04d}.png", f)
    out = tmp_path / "o"
    assert (
        main(
            [
                "estimate",
                str(folder),
                "-o",
                str(out),
                "--model",
                "dis",
                "--start",
                "1",
                "--end",
                "6",
                "--stride",
                "2",
                "--no-progress",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in (out / "flow").iterdir()) == ["frame_0001.flo", "frame_0003.flo"]  # pairs 1-3, 3-5
    rec = json.loads((out / "estimate.json").read_text())
    assert (rec["start"], rec["end"], rec["stride"], rec["frames"]) == (1, 6, 2, 3)
    # DA-Flow honours --corr (windowed = all-pairs to float tolerance) and records the bundled model's provenance
    flows = {}
    for corr in ("all-pairs", "windowed"):
        o = tmp_path / corr
        assert (
            main(
                [
                    "estimate",
                    str(folder),
                    "-o",
                    str(o),
                    "--model",
                    "daflow-tiny",
                    "--step",
                    "0",
                    "--end",
                    "3",
                    "--corr",
                    corr,
                    "--no-progress",
                ]
            )
            == 0
        )
        flows[corr] = read_flow(o / "flow" / "frame_0000.flo")[0]
        rec = json.loads((o / "estimate.json").read_text())
        assert rec["corr"] == corr and rec["weights"] == "bundled:daflow-tiny" and rec["provenance"]["command"]
    np.testing.assert_allclose(flows["windowed"], flows["all-pairs"], atol=1e-3)


def test_degrade_video_range(tmp_path):
    from daflow.data.video import write_video

    clip = render_clip(SyntheticConfig(height=32, width=48, num_frames=7), 1)
    write_video(tmp_path / "v.mp4", clip.frames)
    out = tmp_path / "lq"
    assert (
        main(
            [
                "degrade",
                "video",
                str(tmp_path / "v.mp4"),
                "-o",
                str(out),
                "--start",
                "2",
                "--stride",
                "2",
                "--no-progress",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in out.glob("*.png")) == ["frame_000002.png", "frame_000004.png", "frame_000006.png"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["clips"][0]["frames"] == ["frame_000002.png", "frame_000004.png", "frame_000006.png"]


def test_degrade_bad_range(tmp_path, capsys):
    frames = _frames(tmp_path / "f", 4, 32, 32)
    assert main(["degrade", "frames", str(frames), "-o", str(tmp_path / "o"), "--stride", "0", "--no-progress"]) == 1
    _one_line_error(capsys, "--stride")
    assert main(["degrade", "frames", str(frames), "-o", str(tmp_path / "o"), "--end", "9", "--no-progress"]) == 1
    _one_line_error(capsys, "--end 9", "4 frames")
    assert not (tmp_path / "o").exists()


def test_threads_default_and_option(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert cli.default_threads() == 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    idle = cli.default_threads()
    assert idle == len(os.sched_getaffinity(0))
    monkeypatch.setattr(os, "getloadavg", lambda: (64.0, 64.0, 64.0))  # a busy machine: the same default
    assert cli.default_threads() == idle
    n = torch.get_num_threads()
    try:
        assert cli.apply_threads(1) == 1 and torch.get_num_threads() == 1
        with pytest.raises(ValueError, match="--threads"):
            cli.apply_threads(0)
    finally:
        torch.set_num_threads(n)
    args = cli.build_parser().parse_args(["estimate", "x", "-o", "y", "--threads", "3"])
    assert args.threads == 3
    assert cli.build_parser().parse_args(["train", "recipe", "smoke", "-o", "r", "--threads", "2"]).threads == 2


def test_random_init_does_not_touch_the_global_rng():
    from daflow.api import load_model

    torch.manual_seed(123)
    before = torch.get_rng_state()
    load_model("raft-small", random_init=True, seed=7)
    assert torch.equal(torch.get_rng_state(), before)


def test_small_messages(tmp_path, capsys):
    assert main(["evaluate", "--model", "dis", "--data", "synthetic:tiny?n=0"]) == 1
    _one_line_error(capsys, "option n")
    assert main(["synth", "-o", str(tmp_path / "s"), "--size", "32x48", "--frames", "2"]) == 0
    assert "HxW 32x48" in capsys.readouterr().out
    for cmd in (["synth", "--help"], ["degrade", "--help"], ["evaluate", "--help"]):
        with pytest.raises(SystemExit):
            main(cmd)
        text = capsys.readouterr().out
        assert "%%" not in text
    assert "daflow-tiny" in text  # evaluate --help lists the DA-Flow models
    from daflow.eval.report import _slug

    assert "__" not in _slug("Lifting Q/K (attn)")


def test_the_same_bytes_whatever_the_load(tmp_path, monkeypatch):
    """The default thread count does not follow the machine's load: a busy machine gives the bytes an explicit
    ``--threads`` (the default count) gives, and estimate.json records the count."""
    frames = tmp_path / "frames"
    clip = render_clip(SyntheticConfig(height=64, width=64, num_frames=3), 2)
    for i, frame in enumerate(clip.frames):
        write_image(frames / f"f{i}.png", frame)
    n = torch.get_num_threads()
    try:
        explicit = str(len(os.sched_getaffinity(0)))
        assert main(["estimate", str(frames), "-o", str(tmp_path / "a"), "--threads", explicit, "--no-progress"]) == 0
        monkeypatch.setattr(os, "getloadavg", lambda: (64.0, 64.0, 64.0))
        assert main(["estimate", str(frames), "-o", str(tmp_path / "b"), "--no-progress"]) == 0
    finally:
        torch.set_num_threads(n)
    for name in ("f0.flo", "f1.flo"):
        assert (tmp_path / "a" / "flow" / name).read_bytes() == (tmp_path / "b" / "flow" / name).read_bytes()
    record = json.loads((tmp_path / "b" / "estimate.json").read_text())
    assert record["threads"] == int(explicit)
