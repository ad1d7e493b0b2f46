"""The models shipped inside the package, below ``daflow/weights/``, and how to find them.

- ``dis-raft/`` — the default flow model: the DIS→RAFT refiner (:mod:`daflow.models.refine`), made by
  ``daflow train refine``; its ``PROVENANCE.json`` holds the command, commit, settings and held-out scores.
- ``daflow-tiny/`` (a :meth:`DAFlow.save` folder with its ``transformer/`` and ``vae/``) and
  ``raft-star-tiny/raft.safetensors`` (RAFT-small) — one run of the tiny recipe (``daflow train recipe tiny``) on
  synthetic clips; ``weights/PROVENANCE.json`` records it. They show DA-Flow working without a GPU or downloads;
  they are not the paper's model (for that: ``--weights`` with ``--dit4sr``/``--vae``/``--null-prompt``).
- ``restorer-tiny/`` — the tiny restorer of ``daflow restore`` (``daflow train recipe restore``), when bundled.

Copying a finished run here is :mod:`daflow.recipe.bundle`'s job; flow estimators for the bundled names are built
by :mod:`daflow.models.registry`.
"""

from __future__ import annotations

import json
from pathlib import Path

BUNDLE_DIR = Path(__file__).resolve().parent.parent / "weights"
PROVENANCE = "PROVENANCE.json"
REFINER = "dis-raft"
DAFLOW_SMALL = "daflow-small"  # DA-Flow on the refiner and the restorer's DiT (`daflow train refine --daflow small`)
RESTORER = "restorer-tiny"
RESTORE_JSON = "restore.json"  # the sampler the bundled restorer was trained for
NOTICE = (
    "using the bundled demonstration model DA-Flow-tiny (trained on synthetic clips by `daflow train recipe "
    "tiny`); for the paper's model pass --model daflow --weights (with --dit4sr, --vae, --null-prompt)"
)


def bundled_path(name: str, root: Path | None = None) -> Path:
    """The folder of bundled model ``name`` (``daflow-tiny`` or ``raft-star-tiny``); a clear error if absent."""
    folder = (root or BUNDLE_DIR) / name
    if not folder.is_dir():
        how = {REFINER: "daflow train refine", DAFLOW_SMALL: "daflow train refine --daflow small"}.get(
            name, "daflow train recipe tiny"
        )
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


def load_restorer(*, device="cpu", root: Path | None = None):
    """The bundled tiny restorer (``daflow train recipe restore``): a :class:`DiffusionBackbone` (lifted DiT4SR, VAE,
    zero null prompt) whose ``one_step_sigma`` is the σ* its DiT was fine-tuned for (from ``restore.json``; None when
    it was trained for the full sampler only) and ``fidelity`` its fidelity head (``fidelity/``, when bundled)."""
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
    mode = folder / RESTORE_JSON
    if mode.is_file():
        backbone.one_step_sigma = float(json.loads(mode.read_text())["sigma"])
    if (folder / "fidelity").is_dir():
        from daflow.models.fidelity import load_fidelity

        backbone.fidelity = load_fidelity(folder / "fidelity")
    from daflow.models.gate import GATE_FILE, load_gate

    if (folder / GATE_FILE).is_file():
        backbone.gate = load_gate(folder)
    return backbone.to(device).eval()


def provenance(root: Path | None = None) -> dict:
    path = (root or BUNDLE_DIR) / PROVENANCE
    return json.loads(path.read_text()) if path.is_file() else {}
