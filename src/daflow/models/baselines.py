"""Optional baselines through ptlflow (``pip install 'daflow[baselines]'``): FlowSeek, and parity references.

ptlflow (Morimitsu et al.) reimplements many flow networks with the official key names; its RAFT and SEA-RAFT
reproduce the official forward passes exactly (``docs/models.md``). daflow uses it for the
FlowSeek baseline of the paper's Table 1 and to check its own RAFT and SEA-RAFT number for number.
ptlflow is never imported by the core package: only this module imports it, and only when called.

ptlflow's conventions, hidden behind :class:`PtlflowFlow`: images ``{"images": [B, 2, 3, H, W]}`` in **BGR,
[0, 1]**; output ``{"flows": [B, 1, 2, H, W]}``; checkpoints as ``{"state_dict": …}`` without ``module.``;
RAFT's default of 32 iterations (we always pass the iteration count).
"""

from __future__ import annotations

import importlib.util

import torch
import torch.nn as nn

from daflow.models.weights import load_strict, read_state_dict

#: daflow model name → ptlflow model name
PTLFLOW_MODELS = {
    "raft": "raft",
    "raft-small": "raft_small",
    "sea-raft-s": "sea_raft_s",
    "sea-raft-m": "sea_raft_m",
    "sea-raft-l": "sea_raft_l",
    "flowseek-t": "flowseek_t",
    "flowseek-m": "flowseek_m",
}


def ptlflow_available() -> bool:
    return importlib.util.find_spec("ptlflow") is not None


def _require_ptlflow():
    if not ptlflow_available():
        raise ImportError(
            "this baseline needs ptlflow, an optional extra: pip install 'daflow[baselines]' "
            "(it also needs torchvision)"
        )
    import ptlflow

    return ptlflow


class PtlflowFlow(nn.Module):
    """A ptlflow model behind daflow's convention: ``forward(image1, image2)`` with ``[B, 3, H, W]`` RGB in
    0..255 → flow ``[B, 2, H, W]``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, image1: torch.Tensor, image2: torch.Tensor) -> torch.Tensor:
        images = torch.stack([image1, image2], dim=1).flip(2) / 255.0  # RGB 0..255 -> BGR 0..1
        return self.model({"images": images})["flows"][:, 0]


def load_ptlflow(name: str, weights=None, *, iters: int | None = None, **model_args) -> PtlflowFlow:
    """Build ptlflow's ``name`` (a daflow name from :data:`PTLFLOW_MODELS` or a ptlflow name) with ``iters``
    refinement iterations, load ``weights`` (an official ``.pth``, a ptlflow ``.ckpt``, or a state dict)
    strictly, and return it in eval mode. Without weights the model keeps its random initialisation."""
    ptlflow = _require_ptlflow()
    pt_name = PTLFLOW_MODELS.get(name, name)
    ref = ptlflow.get_model_reference(pt_name)
    if iters is not None:
        model_args["iters"] = iters
    if pt_name.startswith(("sea_raft", "flowseek")):
        model_args.setdefault("block_dims", [64, 128, 256])  # its tuple default is mutated in place by the class
    model = ref(**model_args)
    if weights is not None:
        load_strict(model, read_state_dict(weights, what=f"ptlflow {pt_name}"), what=f"ptlflow {pt_name}")
    return PtlflowFlow(model).eval()
