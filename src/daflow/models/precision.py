"""The networks' compute dtype: float32, or bfloat16 / float16 for the convolutions, with float32 kept where it matters.

One choice (``--dtype``, :func:`daflow.load_model`'s ``dtype``) for every network: the DiT's weights, and the RAFT
family's (RAFT, RAFT-small, SEA-RAFT, the DIS→RAFT refiner, DA-Flow's flow network) compute dtype. A RAFT-family
network in reduced precision runs its encoders and update block under ``torch.autocast`` with its weights in
channels-last memory format (oneDNN's fast layout for bfloat16 convolutions on a CPU), as official RAFT's
``--mixed_precision``; the correlation volumes and lookups, the flow state (the coordinates the GRU updates) and the
convex upsampling stay float32 (:mod:`daflow.models.corr` casts features up), so reduced precision rounds the
network's features, not its geometry.

``auto`` (the default) is float32 for the RAFT family on every device — the official code evaluates in float32, so a
published checkpoint scores as published — and, for the DiT, bfloat16 on CUDA and float32 on a CPU. Reduced precision
is a choice: on a CPU without bfloat16 arithmetic (AVX2 only) bfloat16 measured 4-10× *slower* than float32, with
the default's scores within 0.03% (BENCHMARKS.md, "The default at video speed"); CPUs with AMX and GPUs are where it
may pay. The official-parity tests run float32.
"""

from __future__ import annotations

import torch
from torch import nn

from daflow.choices import DTYPE_CHOICES

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_dtype(dtype: str | torch.dtype | None, device: str | torch.device) -> torch.dtype:
    """The DiT's dtype: ``dtype`` as a torch dtype (a name of :data:`DTYPE_CHOICES` or a dtype); ``None``/``"auto"``:
    bfloat16 on CUDA, float32 elsewhere."""
    if dtype is None or dtype == "auto":
        return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPES.values():
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype}")
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPE_CHOICES)}, got {dtype!r}")
    return DTYPES[dtype]


def flow_dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    """A RAFT-family network's compute dtype: as :func:`resolve_dtype`, but ``None``/``"auto"`` is float32 on every
    device (module docstring)."""
    return torch.float32 if dtype is None or dtype == "auto" else resolve_dtype(dtype, "cpu")


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` → ``"bfloat16"`` (for run records and descriptions)."""
    return str(dtype).removeprefix("torch.")


def reduced(dtype: torch.dtype) -> bool:
    """Whether ``dtype`` is a reduced precision (below float32), the one that turns autocast and channels-last on."""
    return dtype not in (torch.float32, torch.float64)


def autocast(ref: torch.Tensor, dtype: torch.dtype):
    """``torch.autocast`` on ``ref``'s device type to ``dtype``, disabled for float32 (and float64)."""
    return torch.autocast(device_type=ref.device.type, dtype=dtype, enabled=reduced(dtype))


def set_compute_dtype(module: nn.Module, dtype: str | torch.dtype | None) -> nn.Module:
    """Set a RAFT-family network's ``compute_dtype`` (its autocast dtype) and its weights' memory format: channels-last
    for a reduced precision, contiguous for float32 (where channels-last measured slower on a CPU). The weights stay
    float32 (autocast casts them per call), so the choice can be changed back without loss. Returns ``module``."""
    if not hasattr(module, "compute_dtype"):
        raise TypeError(f"{type(module).__name__} has no compute dtype (a RAFT-family network has)")
    dtype = flow_dtype(dtype)
    module.compute_dtype = dtype
    return module.to(memory_format=torch.channels_last if reduced(dtype) else torch.contiguous_format)


__all__ = [
    "DTYPES",
    "DTYPE_CHOICES",
    "autocast",
    "dtype_name",
    "flow_dtype",
    "reduced",
    "resolve_dtype",
    "set_compute_dtype",
]
