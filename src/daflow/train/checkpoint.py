"""Training checkpoints as safetensors (no pickles), written atomically, resumed exactly.

A checkpoint is a folder ``RUN/checkpoints/step_NNNNNNN/`` holding the model in its loadable layout (written by the
caller) and ``state.safetensors``: the optimizer's tensors (``optim.<param index>.<name>``) with the rest of its
state, the step and the run configuration as JSON metadata. The folder is written as ``*.partial`` and renamed when
complete, so a run killed while saving resumes from the previous checkpoint. Data order, crops, degradations,
noise and timesteps are functions of (seed, step) in this package's trainers, so no RNG state is needed.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import torch

STATE_FILE = "state.safetensors"
CHECKPOINTS = "checkpoints"


def optimizer_to_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split ``optimizer.state_dict()`` into tensors (``optim.<i>.<key>``) and a JSON-able remainder."""
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, state in sd["state"].items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{key}"] = value.detach().cpu().clone()  # a snapshot, never the live state
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_from_tensors(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    for name, value in meta.get("scalars", {}).items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def step_folder(run: Path, step: int) -> Path:
    return Path(run) / CHECKPOINTS / f"step_{step:07d}"


def save_checkpoint(
    run: Path,
    step: int,
    optimizer: torch.optim.Optimizer,
    *,
    config: dict,
    write_model: Callable[[Path], None],
    keep: int = 2,
    extra: dict | None = None,
) -> Path:
    """Write checkpoint ``step``: ``write_model(folder)`` saves the model, then the optimizer state and metadata;
    keeps the newest ``keep`` checkpoints."""
    from safetensors.torch import save_file

    final = step_folder(run, step)
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    write_model(partial)
    tensors, optim_meta = optimizer_to_tensors(optimizer)
    meta = {
        "step": str(step),
        "config": json.dumps(config),
        "optimizer": json.dumps(optim_meta),
        "extra": json.dumps(extra or {}),
    }
    save_file(tensors, str(partial / STATE_FILE), metadata=meta)
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    for old in list_checkpoints(run)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(run: Path) -> list[Path]:
    """Complete checkpoints of ``run``, oldest first."""
    folder = Path(run) / CHECKPOINTS
    if not folder.is_dir():
        return []
    done = [
        p
        for p in folder.iterdir()
        if p.is_dir() and p.name.startswith("step_") and not p.name.endswith(".partial") and (p / STATE_FILE).is_file()
    ]
    return sorted(done, key=lambda p: int(p.name.split("_")[1]))


def read_state(folder: Path) -> tuple[int, dict, dict[str, torch.Tensor], dict, dict]:
    """``(step, config, optimizer tensors, optimizer meta, extra)`` of a checkpoint folder."""
    from safetensors import safe_open

    path = Path(folder) / STATE_FILE
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata()
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        return (
            int(meta["step"]),
            json.loads(meta["config"]),
            tensors,
            json.loads(meta["optimizer"]),
            json.loads(meta.get("extra", "{}")),
        )
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"{path}: not a daflow training checkpoint ({type(exc).__name__}: {exc})") from exc


def check_same_run(run: Path, saved: dict, current: dict, keys: tuple[str, ...]) -> None:
    """Refuse to resume ``run`` with settings that change what is trained (``keys`` must agree)."""
    diff = {k: (saved.get(k), current.get(k)) for k in keys if saved.get(k) != current.get(k)}
    if diff:
        lines = ", ".join(f"{k}: saved {a!r} vs now {b!r}" for k, (a, b) in diff.items())
        raise ValueError(
            f"{run} holds a run with other settings ({lines}); use another output folder or the same settings"
        )


def truncate_log(path: Path, step: int) -> None:
    """Drop the lines of a ``log.jsonl`` logged after ``step`` (a resumed run logs them again)."""
    from daflow.files import atomic_write_text

    if not path.is_file():
        return
    keep = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
    atomic_write_text(path, "".join(line + "\n" for line in keep))
