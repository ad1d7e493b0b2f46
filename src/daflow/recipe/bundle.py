"""Copying a finished run's models into the package's ``weights/`` folder with their provenance: the tiny recipe's
DA-Flow-tiny and RAFT*-tiny (``bundle_recipe``), the DIS→RAFT refiner and DA-Flow-small on it (``bundle_refiner``)
and the tiny restorer
(``bundle_restorer``). Each writes into ``DEST.partial`` first and then moves its entries over those of ``DEST``;
other bundled models are left as they are. Every bundle carries ``PROVENANCE.json``: the command, the code version
and commit, the settings and the held-out scores of the run.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from daflow.models.bundled import BUNDLE_DIR, DAFLOW_SMALL, PROVENANCE, REFINER, RESTORER
from daflow.recipe.layout import RunLayout


def bundle_restorer(run: str | Path, dest: str | Path = BUNDLE_DIR, *, command: str = "") -> Path:
    """Copy a finished ``daflow train recipe restore`` run's DiT (fine-tuned for the one-step call, else lifted) and
    VAE into ``dest/restorer-tiny``; ``restore.json`` there names the sampler the DiT was trained for."""
    import daflow
    from daflow.models.bundled import RESTORE_JSON

    run, dest = Path(run), Path(dest)
    layout = RunLayout(run)
    stages = json.loads(layout.recipe_json.read_text())["config"]["stages"]
    stage = "one_step" if "one_step" in stages else "lift"
    transformer, vae = layout.transformer(stage), layout.vae
    if not layout.is_done(stage):
        raise FileNotFoundError(f"{run} has no finished {stage} stage ({run / stage}); run the restore recipe first")
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(transformer, tmp / RESTORER / "transformer")
    shutil.copytree(vae, tmp / RESTORER / "vae")
    if layout.is_done("fidelity"):
        shutil.copytree(run / "fidelity" / "fidelity", tmp / RESTORER / "fidelity")
    if layout.is_done("gate"):
        from daflow.models.gate import GATE_FILE

        shutil.copy2(run / "gate" / GATE_FILE, tmp / RESTORER / GATE_FILE)
    if stage == "one_step":
        sigma = json.loads((run / stage / "train_one_step.json").read_text())["sigma"]
        (tmp / RESTORER / RESTORE_JSON).write_text(json.dumps({"sampler": "one-step", "sigma": sigma}, indent=2))
    record = {
        "command": command or f"daflow train recipe restore -o {run}",
        "daflow": daflow.__version__,
        "git_commit": _git_commit(),
        "recipe": json.loads(RunLayout(run).recipe_json.read_text()),
        "stages": _stage_records(run),
    }
    (tmp / RESTORER / PROVENANCE).write_text(json.dumps(record, indent=2))
    _replace_entries(tmp, dest)
    return dest / RESTORER


def _stage_records(run: Path) -> dict:
    """``{stage: seconds}`` and the pseudo-GT teacher's choice, from the run's ``done.json`` files."""
    records = {}
    for done in sorted(run.glob("*/done.json")):
        info = json.loads(done.read_text())
        records[done.parent.name] = {k: info[k] for k in ("seconds", "teacher", "clean_val_epe", "blocks") if k in info}
    return records


def bundle_recipe(run: str | Path, dest: str | Path = BUNDLE_DIR, *, command: str = "") -> Path:
    """Copy a finished recipe run's DA-Flow and RAFT* (with the DA-Flow's DiT and VAE) into ``dest``."""
    import daflow
    from daflow.models.daflow import DAFlow

    run, dest = Path(run), Path(dest)
    layout = RunLayout(run)
    report = layout.report / "results.json"
    if not report.is_file():
        raise FileNotFoundError(f"{run} has no finished report ({report}); run the whole recipe first")
    info = json.loads(layout.flow_record("daflow").read_text())["model"]
    model = DAFlow.load(layout.flow_model("daflow"), dit4sr=info["transformer"], vae=layout.vae)
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save(tmp / "daflow-tiny", with_backbone=True)
    (tmp / "raft-star-tiny").mkdir(parents=True)
    for name in ("raft.safetensors", "config.json"):
        shutil.copy2(layout.raft_weights("raft_star").parent / name, tmp / "raft-star-tiny" / name)
    results = json.loads(report.read_text())
    scores = {
        k: (v.get("metrics") or v.get("average"))
        for k, v in results.items()
        if isinstance(v, dict) and ("metrics" in v or "average" in v)
    }
    commit = _git_commit()
    record = {
        "command": command or f"daflow train recipe tiny -o {run}",
        "daflow": daflow.__version__,
        "git_commit": commit,
        "recipe": json.loads(RunLayout(run).recipe_json.read_text()),
        "held_out": results.get("spec"),
        "scores": scores,
        "stages": _stage_records(run),
    }
    (tmp / PROVENANCE).write_text(json.dumps(record, indent=2))
    _replace_entries(tmp, dest)
    return dest


def _replace_entries(tmp: Path, dest: Path) -> None:
    """Move every entry of ``tmp`` into ``dest``, replacing entries of the same name; other entries stay."""
    dest.mkdir(parents=True, exist_ok=True)
    for entry in tmp.iterdir():
        target = dest / entry.name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        entry.rename(target)
    tmp.rmdir()


def _git_commit() -> str | None:
    import subprocess

    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, cwd=Path(__file__).parent
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def bundle_refiner(
    run: str | Path, dest: str | Path = BUNDLE_DIR, *, command: str = "", scores: dict | None = None
) -> Path:
    """Copy a finished ``daflow train refine`` run's model into ``dest/dis-raft`` (for a ``--daflow`` run: its DA-Flow
    folder, with its DiT and VAE, into ``dest/daflow-small``) with its ``PROVENANCE.json`` (command, commit, training
    settings, mixture settings, and ``scores`` when given)."""
    import daflow
    from daflow.models.daflow import WEIGHTS_FILE

    run, dest = Path(run), Path(dest)
    folder = run / "model"
    hybrid = (folder / WEIGHTS_FILE).is_file()
    model, name = (folder / WEIGHTS_FILE, DAFLOW_SMALL) if hybrid else (folder / "raft.safetensors", REFINER)
    if not model.is_file() or (hybrid and not (folder / "transformer").is_dir()):
        raise FileNotFoundError(f"{run} has no finished model ({model}); run `daflow train refine` to the end first")
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    if hybrid:
        shutil.copytree(folder, tmp / name)
    else:
        (tmp / name).mkdir(parents=True)
        shutil.copy2(model, tmp / name / "raft.safetensors")
        (tmp / name / "config.json").write_text(
            json.dumps({"_class_name": "DISRefiner", "small": True, "init": "dis-medium"}, indent=2)
        )
    record = {
        "command": command or f"daflow train refine -o {run}",
        "daflow": daflow.__version__,
        "git_commit": _git_commit(),
        "training": json.loads((run / "train_refine.json").read_text()),
        "mixture": json.loads((run / "mixture" / "mixture.json").read_text())
        if (run / "mixture" / "mixture.json").is_file()
        else None,
        "scores": scores or {},
    }
    (tmp / name / PROVENANCE).write_text(json.dumps(record, indent=2))
    _replace_entries(tmp, dest)
    return dest / name
