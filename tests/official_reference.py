"""Deterministic weights for the committed official-output fixtures (``tests/fixtures/official``).

The fixtures hold the outputs of the official RAFT and SEA-RAFT code run on weights that this module generates
from the parameter names and shapes alone, with integer arithmetic only (no torch or numpy random generator, whose
streams may change between versions), so the test rebuilds the very same weights without the official code.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import torch

FIXTURES = Path(__file__).parent / "fixtures" / "official"
_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)


def _uniform(key: str, n: int) -> np.ndarray:
    """``n`` values in [0, 1) on a 2^-24 grid (exact in float32): splitmix64 of (crc32(key), index)."""
    x = np.arange(n, dtype=np.uint64) + np.uint64(zlib.crc32(key.encode()) << 20)
    with np.errstate(over="ignore"):
        x = (x + np.uint64(0x9E3779B97F4A7C15)) & _MASK
        x = ((x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK
        x = ((x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(40)).astype(np.float64) / float(1 << 24)


def tensor_for(key: str, shape: list[int], dtype: str) -> torch.Tensor:
    """The weight ``key`` of ``shape``: fan-in-scaled uniform for weights, near-identity for norm layers."""
    n = int(np.prod(shape)) if shape else 1
    if dtype.startswith("torch.int"):
        return torch.zeros(shape, dtype=getattr(torch, dtype.split(".")[1]))
    u = _uniform(key, n)
    if key.endswith("running_var"):
        v = 0.5 + u
    elif len(shape) <= 1:  # biases, norm weights and means, layer scales
        v = (2 * u - 1) * 0.1 + (
            1.0
            if key.endswith("weight") and "norm" in key or key.endswith((".bn1.weight", ".bn2.weight", ".bn3.weight"))
            else 0.0
        )
    else:
        fan_in = int(np.prod(shape[1:]))
        v = (2 * u - 1) * (1.0 / np.sqrt(fan_in))
    return torch.from_numpy(v.astype(np.float32).reshape(shape))


def layout(name: str) -> list[dict]:
    return json.loads((FIXTURES / f"{name}.layout.json").read_text())


def state_dict(entries: list[dict]) -> dict[str, torch.Tensor]:
    """The official-layout state dict from a layout file's entries (aliases share one tensor's values)."""
    sd: dict[str, torch.Tensor] = {}
    for e in entries:
        src = e.get("alias_of") or e["key"]
        sd[e["key"]] = tensor_for(src, e["shape"], e["dtype"])
    return sd
