"""One model table, one loader, one evaluator: a name means the same policy and the same numbers in the command line
and in the library."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

import daflow
from daflow.cli import main
from daflow.data.synthetic import SyntheticConfig, render_clip
from daflow.eval.benchmark import eval_sets_for
from daflow.files import write_image
from daflow.flow.metrics import FlowMetrics
from daflow.models.catalog import MODELS, min_input_side

SPEC = "synthetic:tiny?n=2&size=64x64&degrade=realbasicvsr"
ROOT = Path(__file__).resolve().parents[1]


def _frames(folder: Path) -> Path:
    clip = render_clip(SyntheticConfig(height=64, width=64, num_frames=3), 0)
    for i, frame in enumerate(clip.frames):
        write_image(folder / f"f{i}.png", frame)
    return folder


@pytest.mark.parametrize("name", ["daflow", "raft", "raft-small"])
def test_a_name_without_its_weights_is_refused_alike(name, tmp_path, capsys):
    with pytest.raises(FileNotFoundError) as library:
        daflow.load_model(name)
    frames = _frames(tmp_path / "frames")
    assert main(["estimate", str(frames), "-o", str(tmp_path / "o"), "--model", name]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == f"daflow estimate: error: {library.value}"
    assert f"{name} needs its weights" in err and not (tmp_path / "o").exists()


def test_the_bundled_names_refuse_random_weights_alike(tmp_path, capsys):
    with pytest.raises(ValueError) as library:
        daflow.load_model("daflow-tiny", random_init=True)
    frames = _frames(tmp_path / "frames")
    assert main(["estimate", str(frames), "-o", str(tmp_path / "o"), "--model", "daflow-tiny", "--random-init"]) == 1
    assert capsys.readouterr().err.strip().endswith(str(library.value))


@pytest.mark.parametrize("name", ["daflow-tiny", "dis-raft"])
def test_cli_and_library_report_the_same_numbers(name, tmp_path):
    out = tmp_path / "r.json"
    assert main(["evaluate", "--model", name, "--data", SPEC, "--no-progress", "-o", str(out)]) == 0
    (cli,) = json.loads(out.read_text())["results"]
    (lib,) = daflow.evaluate(name, SPEC)
    assert [lib.epe, lib.px1, lib.px3, lib.px5] == [cli["metrics"][k] for k in ("epe", "1px", "3px", "5px")]
    assert lib.pairs == cli["pairs"] == 2 * (MODELS[name].chunk - 1)  # two clips of one chunk each
    # ... and they are the metrics of the model's own flows, frames in, pair flows out
    model = daflow.load_model(name)
    metrics = FlowMetrics()
    for eval_set in eval_sets_for(SPEC, model.chunk):
        for i in range(len(eval_set.dataset)):
            s = eval_set.dataset[i]
            first = int(s.meta.get("first_pair", 0))
            metrics.update(model(np.ascontiguousarray(s.frames))[first:], s.flow[first:], None, key=i)
    assert metrics.compute()["epe"] == pytest.approx(lib.epe, rel=1e-6)
    if name == "daflow-tiny":  # the per-step table comes with it, the same in both
        assert {int(k): v for k, v in cli["per_step"].items()} == lib.per_step
        assert lib.per_step[0]["epe"] == lib.epe and cli["average"] == lib.average


def test_the_table_drives_help_and_limits():
    from daflow.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    text = sub.choices["evaluate"].format_help()
    assert all(re.search(rf"^\s+{re.escape(n)}\s", text, re.M) for n in MODELS)
    assert min_input_side("dis-raft") == 57 and min_input_side("daflow") == 49
    assert min_input_side("sea-raft-m", scale=-1) == 2 * min_input_side("sea-raft-m") == 242
    assert min_input_side("farneback") is None
    for name, e in MODELS.items():
        # DA-Flow's 3-frame chunks; the refiner-based daflow-small's DiT sees one pair at a time
        assert e.chunk == (3 if e.family == "daflow" and name != "daflow-small" else 2), name
        assert not (e.bundled and e.needs_weights), name


def test_commands_recipes_and_benchmarks_load_models_only_through_load_model():
    builders = re.compile(r"\b(build_flow_model|dis_raft_estimator|load_daflow_tiny|daflow_estimator|pairwise)\(")
    files = [*(ROOT / "src/daflow/cli").glob("*.py"), *(ROOT / "src/daflow/recipe").glob("*.py")]
    files += [*(ROOT / "benchmarks").glob("*.py")]
    offenders = [str(p.relative_to(ROOT)) for p in files if builders.search(p.read_text())]
    assert offenders == []
