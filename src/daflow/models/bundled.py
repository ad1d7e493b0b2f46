"""The demonstration models shipped inside the package: DA-Flow-tiny and RAFT*-tiny (issue 7).

Both come from one run of the tiny recipe (``daflow train recipe tiny``, :mod:`daflow.train.recipe`) on synthetic
clips with exact ground truth, degraded with the ``realbasicvsr`` preset; ``weights/PROVENANCE.json`` records the
exact command, seed, recipe settings, code version and held-out scores. They show DA-Flow working without a GPU
or downloads; they are not the paper's model (for that: ``--weights`` with ``--dit4sr``/``--vae``/``--null-prompt``).

Layout below ``daflow/weights/``: ``daflow-tiny/`` (a :meth:`DAFlow.save` folder with its ``transformer/`` and
``vae/``) and ``raft-star-tiny/raft.safetensors`` (RAFT-small).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

BUNDLE_DIR = Path(__file__).resolve().parent.parent / "weights"
PROVENANCE = "PROVENANCE.json"
REFINER = "dis-raft"
RESTORER = "restorer-tiny"
NOTICE = (
    "using the bundled demonstration model DA-Flow-tiny (trained on synthetic clips by `daflow train recipe "
    "tiny`); for the paper's model pass --weights, --dit4sr, --vae and --null-prompt"
)


def bundled_path(name: str, root: Path | None = None) -> Path:
    """The folder of bundled model ``name`` (``daflow-tiny`` or ``raft-star-tiny``); a clear error if absent."""
    folder = (root or BUNDLE_DIR) / name
    if not folder.is_dir():
        how = "daflow train refine" if name == REFINER else "daflow train recipe tiny"
        raise FileNotFoundError(
            f"the bundled model {name} is not in this installation ({folder}); train it with "
            f"`{how} -o RUN --bundle-into src/daflow/weights` or pass --weights"
        )
    return folder


def available(root: Path | None = None) -> bool:
    root = root or BUNDLE_DIR
    return (root / "daflow-tiny" / "flownet.safetensors").is_file() and (
        root / "raft-star-tiny" / "raft.safetensors"
    ).is_file()


def load_daflow_tiny(*, device="cpu", root: Path | None = None):
    from daflow.models.daflow import DAFlow

    return DAFlow.load(bundled_path("daflow-tiny", root), device=device).eval()


def raft_star_tiny(*, iters: int = 12, device="cpu", root: Path | None = None):
    from daflow.models.registry import build_flow_model

    est = build_flow_model(
        "raft-small", bundled_path("raft-star-tiny", root) / "raft.safetensors", iters=iters, device=device
    )
    est.description = "RAFT*-tiny (bundled: RAFT-small fine-tuned on degraded synthetic clips)"
    return est


def dis_raft(
    weights=None, *, iters: int | None = None, device="cpu", corr_mode: str = "auto", root: Path | None = None
):
    """The DIS→RAFT refiner (:mod:`daflow.models.refine`) as a flow estimator: the bundled weights, or ``weights``
    (a ``daflow train refine`` run's ``model/raft.safetensors``)."""
    import torch

    from daflow.models.raft_weights import load_raft
    from daflow.models.refine import DEFAULT_ITERS, refine_pyramid
    from daflow.models.registry import FlowEstimator

    path = weights if weights is not None else bundled_path(REFINER, root) / "raft.safetensors"
    model = load_raft(path, small=True, convex=True, corr_mode=corr_mode).eval().to(torch.device(device))
    n = DEFAULT_ITERS if iters is None else iters
    source = "bundled" if weights is None else str(weights)
    return FlowEstimator(
        "dis-raft",
        f"DIS->RAFT refiner ({source}), {n} iterations",
        lambda a, b: refine_pyramid(model, a, b, iters=n),
        torch.device(device),
        module=model,
    )


def load_restorer(*, device="cpu", root: Path | None = None):
    """The bundled tiny restorer (``daflow train recipe restore``): a :class:`DiffusionBackbone` (lifted DiT4SR, VAE,
    zero null prompt)."""
    from daflow.models.backbone import DiffusionBackbone
    from daflow.models.dit4sr import load_dit4sr
    from daflow.models.prompt import zero_prompt
    from daflow.models.vae import load_vae

    folder = bundled_path(RESTORER, root)
    dit = load_dit4sr(folder / "transformer")
    backbone = DiffusionBackbone(
        dit, load_vae(folder / "vae"), zero_prompt(dit.config.joint_attention_dim, dit.config.pooled_projection_dim)
    )
    backbone.origin = f"bundled:{RESTORER}"
    return backbone.to(device).eval()


def bundle_restorer(run: str | Path, dest: str | Path = BUNDLE_DIR, *, command: str = "") -> Path:
    """Copy a finished ``daflow train recipe restore`` run's lifted DiT and VAE into ``dest/restorer-tiny``."""
    import daflow

    run, dest = Path(run), Path(dest)
    transformer, vae = run / "lift" / "transformer", run / "vae" / "vae"
    if not (run / "lift" / "done.json").is_file():
        raise FileNotFoundError(f"{run} has no finished lifting stage ({run / 'lift'}); run the restore recipe first")
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(transformer, tmp / RESTORER / "transformer")
    shutil.copytree(vae, tmp / RESTORER / "vae")
    record = {
        "command": command or f"daflow train recipe restore -o {run}",
        "daflow": daflow.__version__,
        "git_commit": _git_commit(),
        "recipe": json.loads((run / "recipe.json").read_text()),
        "stages": _stage_records(run),
    }
    (tmp / RESTORER / PROVENANCE).write_text(json.dumps(record, indent=2))
    _replace_entries(tmp, dest)
    return dest / RESTORER


def provenance(root: Path | None = None) -> dict:
    path = (root or BUNDLE_DIR) / PROVENANCE
    return json.loads(path.read_text()) if path.is_file() else {}


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
    report = run / "report" / "results.json"
    if not report.is_file():
        raise FileNotFoundError(f"{run} has no finished report ({report}); run the whole recipe first")
    info = json.loads((run / "daflow" / "train_flow.json").read_text())["model"]
    model = DAFlow.load(run / "daflow" / "model", dit4sr=info["transformer"], vae=run / "vae" / "vae")
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save(tmp / "daflow-tiny", with_backbone=True)
    (tmp / "raft-star-tiny").mkdir(parents=True)
    for name in ("raft.safetensors", "config.json"):
        shutil.copy2(run / "raft_star" / "model" / name, tmp / "raft-star-tiny" / name)
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
        "recipe": json.loads((run / "recipe.json").read_text()),
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
    """Copy a finished ``daflow train refine`` run's model into ``dest/dis-raft`` with its ``PROVENANCE.json``
    (command, commit, training settings, mixture settings, and ``scores`` when given)."""
    import daflow

    run, dest = Path(run), Path(dest)
    model = run / "model" / "raft.safetensors"
    if not model.is_file():
        raise FileNotFoundError(f"{run} has no finished model ({model}); run `daflow train refine` to the end first")
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / REFINER).mkdir(parents=True)
    shutil.copy2(model, tmp / REFINER / "raft.safetensors")
    (tmp / REFINER / "config.json").write_text(
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
    (tmp / REFINER / PROVENANCE).write_text(json.dumps(record, indent=2))
    _replace_entries(tmp, dest)
    return dest / REFINER
