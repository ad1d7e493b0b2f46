"""``daflow robustness``: every corruption damages more at a higher severity, draws once per clip, runs from the
command line in seconds with classical models, gives the same numbers twice and the same numbers sharded."""

import json

import numpy as np
import pytest

from daflow.cli import main
from daflow.data.corruptions import CORRUPTIONS, corrupt
from daflow.data.synthetic import SyntheticConfig, render_clip

CLIP = render_clip(SyntheticConfig(height=64, width=80, num_frames=2), 3).frames
TEMPORAL = {"h264", "realbasicvsr"}  # temporal by nature: not one draw applied to every frame


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / max(np.mean((a.astype(np.float64) - b) ** 2), 1e-12)))


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_a_higher_severity_damages_more(name):
    psnr = [_psnr(corrupt(CLIP, name, s, seed=1), CLIP) for s in (1, 2, 3, 4, 5)]
    assert all(a > b for a, b in zip(psnr, psnr[1:])), psnr
    again = corrupt(CLIP, name, 3, seed=1)
    assert again.dtype == np.uint8 and again.shape == CLIP.shape
    np.testing.assert_array_equal(again, corrupt(CLIP, name, 3, seed=1))  # a pure function of its arguments


@pytest.mark.parametrize("name", sorted(set(CORRUPTIONS) - TEMPORAL))
def test_one_draw_for_the_whole_clip(name):
    still = np.stack([CLIP[0], CLIP[0]])  # two identical frames stay identical: the same draw on each
    out = corrupt(still, name, 4, seed=2)
    np.testing.assert_array_equal(out[0], out[1])


def test_bad_names_and_severities_are_one_line_errors(tmp_path, capsys):
    base = ["robustness", "--model", "dis", "--data", "synthetic:default?n=1&size=64x64", "-o", str(tmp_path / "o")]
    assert main([*base, "--corruptions", "gaussian_noise,hail"]) == 1
    assert "unknown hail" in capsys.readouterr().err
    assert main([*base, "--severities", "0,6"]) == 1
    assert "--severities must lie in 1..5" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def _run(out, *extra) -> int:
    argv = ["robustness", "--model", "dis", "--model", "farneback", "--data", "synthetic:default?n=2&size=96x96"]
    argv += ["--corruptions", "gaussian_noise,gaussian_blur,jpeg_compression", "-o", str(out), "--no-progress"]
    return main([*argv, *extra])


def test_the_command_gives_the_same_numbers_twice_and_sharded(tmp_path):
    assert _run(tmp_path / "a") == 0 and _run(tmp_path / "b") == 0
    a, b = (json.loads((tmp_path / d / "robustness.json").read_text())["rows"] for d in ("a", "b"))
    assert a == [dict(r, seconds=x["seconds"]) for r, x in zip(b, a)]  # identical but for the timings
    for name in ("robustness.md", "robustness.png", "examples.png"):
        assert (tmp_path / "a" / name).stat().st_size > 0
    rows = {(r["model"], r["corruption"], r["severity"]): r for r in a}
    assert len(rows) == 2 * (1 + 3 * 5)
    for c in ("gaussian_noise", "gaussian_blur", "jpeg_compression"):  # harder damage, larger error (DIS)
        assert rows[("dis", c, 5)]["epe"] > rows[("dis", c, 1)]["epe"], c
        assert rows[("dis", c, 5)]["robustness"] > 0
    assert rows[("dis", "clean", 0)]["robustness"] == 0.0
    # two shards into one folder, then the run that assembles: the same rows
    assert _run(tmp_path / "s", "--shard", "1/2") == 0 and not (tmp_path / "s" / "robustness.json").exists()
    assert _run(tmp_path / "s", "--shard", "0/2") == 0
    shard = json.loads((tmp_path / "s" / "robustness.json").read_text())["rows"]
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in shard] == [
        {k: v for k, v in r.items() if k != "seconds"} for r in a
    ]


def test_video_specs_are_scored_by_the_warping_error(tmp_path):
    from daflow.files import write_image

    clip = render_clip(SyntheticConfig(height=64, width=64, num_frames=4), 5).frames
    for i, frame in enumerate(clip):
        write_image(tmp_path / "v" / f"{i}.png", frame)
    argv = ["robustness", "--model", "dis", "--model", "zero", "--data", f"video:{tmp_path / 'v'}"]
    argv += ["--corruptions", "gaussian_noise", "--severities", "1,5", "-o", str(tmp_path / "o"), "--no-progress"]
    assert main(argv) == 0
    rows = {
        (r["model"], r["severity"]): r for r in json.loads((tmp_path / "o" / "robustness.json").read_text())["rows"]
    }
    assert rows[("dis", 0)]["epe"] is None and rows[("dis", 0)]["warp_error"] < rows[("zero", 0)]["warp_error"]
    assert rows[("dis", 5)]["robustness"] > rows[("dis", 1)]["robustness"] > 0
    assert "warping error" in (tmp_path / "o" / "robustness.md").read_text()
    mixed = [*argv[:-3], "--data", "synthetic:default?n=1", "-o", str(tmp_path / "x")]
    assert main(mixed) == 1
