"""What a new user hit on real footage: previews kept out of frame folders, odd frames named before any work, ranges
of a video with their clean frames, a score on the moving pixels, one colour scale for --viz, output locations checked
first, one spelling of --no-progress, clear errors for numpy dtypes and files given as folders."""

import json

import numpy as np
import pytest

import daflow
from daflow.cli import main
from daflow.data.synthetic import SyntheticConfig, render_clip
from daflow.data.video import FrameSource, write_video
from daflow.files import write_image


def _frames(folder, n=4, size=(64, 80), seed=0):
    clip = render_clip(SyntheticConfig(height=size[0], width=size[1], num_frames=n), seed)
    for i, frame in enumerate(clip.frames):
        write_image(folder / f"frame_{i:04d}.png", frame)
    return folder


def _last_error(capsys) -> str:
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_the_preview_stays_out_of_the_frames_and_estimate_reads_the_mirror(tmp_path, capsys):
    src = _frames(tmp_path / "in")
    out = tmp_path / "lq"
    assert main(["degrade", "frames", str(src), "-o", str(out), "--preview", "--no-progress"]) == 0
    assert not (out / "preview.png").exists() and (out / ".daflow-degrade" / "preview.png").is_file()
    assert "preview:" in capsys.readouterr().out
    assert main(["estimate", str(out), "-o", str(tmp_path / "est"), "--model", "dis", "--no-progress"]) == 0
    assert len(list((tmp_path / "est" / "flow").iterdir())) == 3
    with pytest.raises(SystemExit):  # one spelling: --no-progress
        main(["degrade", "frames", str(src), "-o", str(tmp_path / "x"), "--quiet"])


def test_an_odd_image_is_named_before_any_work(tmp_path, capsys):
    src = _frames(tmp_path / "in")
    write_image(src / "zz_notes.png", np.zeros((20, 30, 3), np.uint8))  # not a frame
    commands = {
        "estimate": ["estimate", str(src), "-o", str(tmp_path / "e"), "--model", "dis"],
        "degrade": ["degrade", "frames", str(src), "-o", str(tmp_path / "d")],
        "evaluate": ["evaluate", "--model", "dis", "--data", f"video:{src}"],
        "restore": ["restore", str(src), "-o", str(tmp_path / "r"), "--method", "temporal", "--flow-model", "dis"],
    }
    for name, argv in commands.items():
        assert main(argv) == 1, name
        err = _last_error(capsys)
        assert "zz_notes.png (30x20)" in err and "differ in size" in err, (name, err)
    assert not any((tmp_path / d).exists() for d in ("e", "d", "r"))


def test_a_file_given_as_a_frame_folder(tmp_path, capsys):
    video = tmp_path / "clip.mp4"
    write_video(video, np.zeros((3, 32, 32, 3), np.uint8))
    assert main(["degrade", "frames", str(video), "-o", str(tmp_path / "o")]) == 1
    assert "is a file" in _last_error(capsys)


def test_a_range_of_a_video_with_its_clean_frames(tmp_path):
    clip = render_clip(SyntheticConfig(height=64, width=64, num_frames=8), 4).frames
    video = tmp_path / "clip.mp4"
    write_video(video, clip, crf=10)
    # a degraded range, with the clean frames of that range beside it
    out = tmp_path / "lq"
    argv = ["degrade", "video", str(video), "-o", str(out), "--start", "2", "--end", "6", "--write-clean"]
    assert main([*argv, "--no-progress"]) == 0
    lq, clean = sorted(out.glob("*.png")), sorted((out / "clean").glob("*.png"))
    assert [p.name for p in lq] == [p.name for p in clean] and len(lq) == 4
    spec = f"video:{out}?clean={out / 'clean'}"
    assert main(["evaluate", "--model", "dis", "--data", spec, "-o", str(tmp_path / "a.json"), "--no-progress"]) == 0
    assert json.loads((tmp_path / "a.json").read_text())["results"][0]["pairs"] == 3
    # a range of a whole degraded video against the whole clean video: the spec takes the range of both
    whole = tmp_path / "whole"
    assert main(["degrade", "video", str(video), "-o", str(whole), "--no-progress"]) == 0
    spec = f"video:{whole}?clean={video}&start=2&end=6"
    assert main(["evaluate", "--model", "dis", "--data", spec, "-o", str(tmp_path / "b.json"), "--no-progress"]) == 0
    assert json.loads((tmp_path / "b.json").read_text())["results"][0]["pairs"] == 3


def test_the_score_on_moving_pixels(tmp_path):
    from daflow.eval.video_quality import VideoPairs, evaluate_video

    rng = np.random.default_rng(0)
    base = (rng.random((96, 96, 3)) * 255).astype(np.uint8)
    frames = []
    for k in range(3):  # a static textured background and a square moving 4 px right each frame
        f = base.copy()
        f[30:60, 20 + 4 * k : 50 + 4 * k] = np.roll(base[10:40, 50:80], 0, axis=0)
        frames.append(f)
    folder = tmp_path / "v"
    for k, f in enumerate(frames):
        write_image(folder / f"{k}.png", f)
    r = evaluate_video({}, VideoPairs(FrameSource(folder)), progress=False)
    rows = r["rows"]
    assert 0 < r["moving_pct"] < 30  # most of the frame stands still
    assert rows["DIS (input)"]["warp_error_moving"] < rows["zero flow"]["warp_error_moving"]


def test_viz_pictures_share_one_scale(tmp_path, capsys):
    src = _frames(tmp_path / "in", n=3)
    out = tmp_path / "e"
    assert main(["estimate", str(src), "-o", str(out), "--model", "dis", "--viz", "--no-progress"]) == 0
    record = json.loads((out / "estimate.json").read_text())
    assert record["viz_max_flow"] >= 1.0 and len(list((out / "viz").glob("*.png"))) == 2
    fixed = tmp_path / "f"
    assert main(["estimate", str(src), "-o", str(fixed), "--model", "dis", "--viz", "--max-flow", "50"]) == 0
    assert json.loads((fixed / "estimate.json").read_text())["viz_max_flow"] == 50.0
    assert main(["estimate", str(src), "-o", str(tmp_path / "g"), "--model", "dis", "--max-flow", "0"]) == 1
    assert "--max-flow must be > 0" in _last_error(capsys)


def test_output_locations_are_checked_first(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    argv = ["evaluate", "--model", "dis", "--data", "synthetic:tiny?n=1&size=64x64", "-o", str(blocker / "r.json")]
    assert main(argv) == 1
    err = _last_error(capsys)
    assert err.startswith("daflow evaluate: error: cannot write") and "is not a folder" in err
    src = _frames(tmp_path / "in", n=2)
    assert main(["estimate", str(src), "-o", str(blocker / "sub"), "--model", "dis"]) == 1
    assert "cannot write" in _last_error(capsys)


def test_the_api_names_the_dtype_it_was_given():
    model = daflow.load_model("dis")
    with pytest.raises(ValueError, match="got numpy float32"):
        model(np.zeros((2, 32, 32, 3), np.float32))
