"""The command line's layout: building the parser loads no torch, and every choice it offers works in the library."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "argv", [["--help"], ["degrade", "--help"], ["estimate", "--help"], ["train", "recipe", "--help"]]
)
def test_help_imports_no_torch(argv):
    code = (
        "import sys; from daflow.cli import build_parser\n"
        "try:\n    build_parser().parse_args(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "print('torch' in sys.modules, 'cv2' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False False", out


def test_every_offered_choice_works(tmp_path):
    import dataclasses

    import numpy as np

    from daflow import choices
    from daflow.data.base import DatasetLayoutError
    from daflow.data.degrade.mirror import plan_mirror
    from daflow.data.synthetic import SYNTHETIC_PRESETS, render_clip
    from daflow.flow.io import read_flow, write_flow

    flow = np.random.default_rng(0).normal(0, 3, (24, 32, 2)).astype(np.float32)
    for fmt in {*choices.FLOW_FILE_FORMATS, *choices.LABEL_FORMATS}:  # every file format writes and reads back
        write_flow(tmp_path / f"f.{fmt}", flow)
        back, _ = read_flow(tmp_path / f"f.{fmt}")
        np.testing.assert_allclose(back, flow, atol=1 / 64 if fmt == "png" else 1e-6)
    for name in choices.SYNTHETIC_PRESET_NAMES:  # every synthetic preset renders
        cfg = dataclasses.replace(SYNTHETIC_PRESETS[name], height=32, width=32, num_frames=2)
        assert render_clip(cfg, 0).flow.shape == (1, 32, 32, 2)
    for kind in choices.MIRROR_KINDS:  # every mirror kind has a planner: an empty folder is a layout error
        (tmp_path / kind).mkdir()
        with pytest.raises((DatasetLayoutError, FileNotFoundError)):
            plan_mirror(kind, tmp_path / kind / ("v.mp4" if kind == "video" else ""))
    from daflow.models.precision import DTYPES, resolve_dtype

    assert set(choices.DTYPE_CHOICES) == {"auto", *DTYPES}  # every --dtype resolves to a torch dtype
    assert {resolve_dtype(name, "cpu") for name in choices.DTYPE_CHOICES} == set(DTYPES.values())
    import daflow.data.specs as datasets

    assert choices.module_doc("daflow.data.specs") == datasets.__doc__.strip()


def test_every_command_has_its_own_module():
    from pathlib import Path

    import daflow.cli

    folder = Path(daflow.cli.__file__).parent
    for command in (
        "analyze",
        "degrade",
        "demo",
        "estimate",
        "evaluate",
        "pseudo_gt",
        "restore",
        "robustness",
        "synth",
        "train",
        "viz",
    ):
        assert (folder / f"{command}.py").is_file()


def test_training_the_published_dit_defaults_to_paper_settings():
    from daflow.cli import build_parser
    from daflow.cli.common import training_settings

    parser = build_parser()
    base = ["train", "lift", "--data", "x", "-o", "y"]
    assert training_settings(parser.parse_args(base + ["--random-init"])) == "tiny"
    assert training_settings(parser.parse_args(base + ["--dit4sr", "d", "--vae", "v"])) == "paper"
    assert training_settings(parser.parse_args(base + ["--dit4sr", "d", "--vae", "v", "--settings", "tiny"])) == "tiny"
    flow = ["train", "flow", "--data", "x", "-o", "y", "--preset", "paper", "--random-init"]
    assert training_settings(parser.parse_args(flow)) == "paper"
