import json
import subprocess
import sys

import pytest

from daflow.cli import main
from daflow.files import read_image
from daflow.flow.io import read_flow


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and "daflow" in capsys.readouterr().out
    assert main([]) == 2
    with pytest.raises(SystemExit):
        main(["synth", "--help"])
    assert "exact forward flow" in capsys.readouterr().out


def test_synth_then_viz(tmp_path, capsys):
    out = tmp_path / "clip"
    assert main(["synth", "-o", str(out), "--frames", "3", "--size", "48x64", "--seed", "2"]) == 0
    assert sorted(p.name for p in (out / "frames").iterdir()) == ["frame_0000.png", "frame_0001.png", "frame_0002.png"]
    flow, valid = read_flow(out / "flow" / "frame_0001.flo")
    assert flow.shape == (48, 64, 2) and valid.all()
    meta = json.loads((out / "synth.json").read_text())
    assert meta["seed"] == 2 and meta["config"]["num_frames"] == 3
    assert main(["viz", str(out / "flow" / "frame_0000.flo"), "-o", str(tmp_path / "v.png")]) == 0
    assert read_image(tmp_path / "v.png").shape == (48, 64, 3)


def test_bad_inputs_exit_nonzero_with_clear_message(tmp_path, capsys):
    assert main(["viz", str(tmp_path / "missing.flo"), "-o", str(tmp_path / "v.png")]) == 1
    assert "flow file not found" in capsys.readouterr().err
    (tmp_path / "bad.flo").write_bytes(b"junk")
    assert main(["viz", str(tmp_path / "bad.flo"), "-o", str(tmp_path / "v.png")]) == 1
    assert "truncated" in capsys.readouterr().err
    assert not (tmp_path / "v.png").exists()
    with pytest.raises(SystemExit) as e:
        main(["synth", "-o", str(tmp_path), "--size", "big"])
    assert e.value.code == 2 and "HxW" in capsys.readouterr().err
    assert main(["synth", "-o", str(tmp_path / "x"), "--frames", "1"]) == 1


def test_demo_runs_and_writes_picture(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "daflow.cli", "demo", "-o", str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert "| DIS (LQ) |" in proc.stdout
    metrics = json.loads((tmp_path / "metrics.json").read_text())["metrics"]
    assert metrics["DIS (HQ), clean reference"]["epe"] < metrics["DIS (LQ)"]["epe"] < metrics["zero flow"]["epe"]
    assert read_image(tmp_path / "demo.png").ndim == 3
