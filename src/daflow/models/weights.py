"""Reading published checkpoints and loading them strictly, with one clear error for any mismatch.

The official RAFT and SEA-RAFT residual blocks register their stride-2 normalisation under two names (RAFT:
``norm3`` and ``downsample.1``; SEA-RAFT: ``bn3`` and ``downsample.1``), so their files carry both entries. A file
saved with only one of the names (for example by a tool that deduplicates shared tensors, such as safetensors)
gets the other back here: aliases are found from the model itself, as modules registered under two names.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import torch
import torch.nn as nn


def read_state_dict(path_or_state_dict, *, what: str, published: str = "") -> dict[str, torch.Tensor]:
    """A checkpoint (``.pth``/``.pt`` pickle read with ``weights_only``, or ``.safetensors``) or a state dict.

    The ``module.`` prefix of ``nn.DataParallel`` checkpoints is stripped; a Lightning-style ``{"state_dict": …}``
    (ptlflow) is unwrapped. ``what`` names the model in errors and ``published`` says where the official file
    is published.
    """
    if isinstance(path_or_state_dict, (str, os.PathLike)):
        path = Path(path_or_state_dict)
        if not path.is_file():
            hint = f" ({published})" if published else ""
            raise FileNotFoundError(f"{what} checkpoint not found: {path}{hint}")
        try:
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                sd = load_file(str(path))
            else:
                sd = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any reader failure means the same thing to the user
            raise ValueError(f"{path}: cannot read as a {what} checkpoint ({type(exc).__name__}: {exc})") from exc
        source = str(path)
    else:
        sd, source = path_or_state_dict, "state dict"
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError(f"{source}: a {what} checkpoint must be a non-empty flat dict of tensors")
    return {k.removeprefix("module."): v for k, v in sd.items()}


def fill_aliases(model: nn.Module, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Copy entries between names of modules that ``model`` registers more than once (see module docstring)."""
    names: dict[int, list[str]] = defaultdict(list)
    for name, mod in model.named_modules(remove_duplicate=False):
        names[id(mod)].append(name)
    out = dict(sd)
    for mod_names in names.values():
        if len(mod_names) < 2:
            continue
        mod = model.get_submodule(mod_names[0])
        for pname in mod.state_dict():
            keys = [f"{n}.{pname}" for n in mod_names]
            present = [k for k in keys if k in out]
            if present:
                for k in keys:
                    out.setdefault(k, out[present[0]])
    return out


def check_state_dict(
    expected: dict[str, torch.Tensor], sd: dict[str, torch.Tensor], *, prefix: str, source: str = "checkpoint"
) -> None:
    """Raise one ``ValueError`` (``"{prefix}: missing …; unexpected …; key: {source} shape vs model shape"``) unless
    ``sd`` has exactly the keys and shapes of ``expected``."""
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected))
    wrong = sorted(k for k in set(sd) & set(expected) if sd[k].shape != expected[k].shape)
    if missing or unexpected or wrong:
        lines = []
        if missing:
            lines.append(f"missing {len(missing)} keys, e.g. {missing[:3]}")
        if unexpected:
            lines.append(f"unexpected {len(unexpected)} keys, e.g. {unexpected[:3]}")
        for k in wrong[:3]:
            lines.append(f"{k}: {source} {tuple(sd[k].shape)} vs model {tuple(expected[k].shape)}")
        if len(wrong) > 3:
            lines.append(f"{len(wrong) - 3} more wrong shapes")
        raise ValueError(f"{prefix}: " + "; ".join(lines))


def load_strict(model: nn.Module, sd: dict[str, torch.Tensor], *, what: str) -> nn.Module:
    """``load_state_dict(strict=True)`` after :func:`fill_aliases`, with :func:`check_state_dict`'s one clear error."""
    sd = fill_aliases(model, sd)
    check_state_dict(model.state_dict(), sd, prefix=f"checkpoint does not fit {what}")
    model.load_state_dict(sd, strict=True)
    return model


def read_diffusers_model(
    path: str | os.PathLike, *, subfolder: str, what: str, published: str
) -> tuple[Path | None, dict[str, torch.Tensor], list[Path]]:
    """A model saved by diffusers' ``save_pretrained``: a ``*.safetensors`` file, its folder, or the pipeline folder
    holding ``subfolder`` (e.g. ``transformer``, ``vae``). Returns (the ``config.json`` beside the weights or None,
    the merged state dict, the files read)."""
    from safetensors.torch import load_file

    path = Path(path)
    if path.is_dir():
        nested = path / subfolder
        folder = nested if nested.is_dir() and not (path / "config.json").is_file() else path
        files = sorted(folder.glob("*.safetensors"))
        if not files:
            raise FileNotFoundError(f"{folder}: no .safetensors file ({published})")
    elif path.is_file():
        folder, files = path.parent, [path]
    else:
        raise FileNotFoundError(f"{what} weights not found: {path} ({published})")
    sd: dict[str, torch.Tensor] = {}
    for f in files:
        try:
            sd.update(load_file(str(f)))
        except Exception as exc:  # noqa: BLE001
            raise ValueError(f"{f}: cannot read as safetensors ({exc})") from exc
    config = folder / "config.json"
    return (config if config.is_file() else None), sd, files


def save_diffusers_model(
    folder: str | os.PathLike, state_dict: dict[str, torch.Tensor], config: dict, *, class_name: str
) -> Path:
    """Write ``config.json`` (with diffusers' ``_class_name``) and ``diffusion_pytorch_model.safetensors`` into
    ``folder``, each atomically: the layout :func:`read_diffusers_model` (and diffusers) reads."""
    import json

    from safetensors.torch import save_file

    from daflow.files import atomic_path, atomic_write_text

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "diffusion_pytorch_model.safetensors") as tmp:
        save_file(
            {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}, str(tmp), metadata={"format": "pt"}
        )
    atomic_write_text(folder / "config.json", json.dumps({"_class_name": class_name, **config}, indent=2))
    return folder
