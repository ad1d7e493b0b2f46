"""The command line's layout (issue 17): building the parser loads no torch, and the choices it offers agree with
the library's own presets and formats."""

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


def test_choices_agree_with_the_library():
    from daflow import choices
    from daflow.data.degrade.mirror import KINDS
    from daflow.data.synthetic import SYNTHETIC_PRESETS
    from daflow.inference import FORMATS
    from daflow.train.pseudo_gt import LABEL_FORMATS

    assert set(choices.SYNTHETIC_PRESET_NAMES) == set(SYNTHETIC_PRESETS)
    assert KINDS == choices.MIRROR_KINDS and FORMATS == choices.FLOW_FILE_FORMATS
    assert LABEL_FORMATS == choices.LABEL_FORMATS
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
