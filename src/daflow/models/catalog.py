"""The flow models daflow can run by name, and where their published weights come from (no torch import, so
that the command line starts fast). :mod:`daflow.models.registry` builds them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelEntry:
    description: str
    published: str = ""  # where the official weights are published ("" = no weights needed)


_RAFT = "the official {} comes from https://github.com/princeton-vl/RAFT (download_models.sh)"
_SEA = (
    "the official checkpoints (e.g. Tartan-C-T-TSKH-spring540x960-M.pth) are linked from "
    "https://github.com/princeton-vl/SEA-RAFT and on Hugging Face (MemorySlices/Tartan-C-T-TSKH-spring540x960-M)"
)

FLOW_MODELS: dict[str, ModelEntry] = {
    "raft": ModelEntry("RAFT-large (Teed & Deng 2020)", _RAFT.format("raft-things.pth")),
    "raft-small": ModelEntry("RAFT-small", _RAFT.format("raft-small.pth")),
    "sea-raft-s": ModelEntry("SEA-RAFT-S (Wang et al. 2024)", _SEA),
    "sea-raft-m": ModelEntry("SEA-RAFT-M (the paper's teacher with --scale -1: spring-M)", _SEA),
    "sea-raft-l": ModelEntry("SEA-RAFT-L (the M weights at 12 iterations)", _SEA),
    "flowseek-t": ModelEntry(
        "FlowSeek-T (Poggi & Tosi 2025) via ptlflow, extra [baselines]",
        "flowseek_T_*.pth from https://github.com/mattpoggi/flowseek",
    ),
    "flowseek-m": ModelEntry(
        "FlowSeek-M via ptlflow, extra [baselines]", "flowseek_M_*.pth from https://github.com/mattpoggi/flowseek"
    ),
    "dis-raft": ModelEntry(
        "DIS->RAFT refiner, bundled default (RAFT-small warm-started from OpenCV DIS, trained on "
        "degraded synthetic clips with real-size motion)"
    ),
    "raft-star-tiny": ModelEntry(
        "RAFT*-tiny, bundled (RAFT-small fine-tuned on degraded synthetic clips by the tiny recipe)"
    ),
    "dis": ModelEntry("OpenCV DIS optical flow (classical, no weights)"),
    "farneback": ModelEntry("OpenCV Farneback (classical, no weights)"),
}
CLASSICAL = ("dis", "farneback")
BUNDLED = ("dis-raft", "raft-star-tiny")


def _smallest_side(padded_min: int, multiple: int) -> int:
    """The smallest input side whose padding to ``multiple`` reaches ``padded_min``."""
    return padded_min - multiple + 1


def min_input_side(name: str, *, scale: int | None = None) -> int | None:
    """The smallest frame side (pixels) model ``name`` accepts, known before any weights are loaded (None: no
    known limit). RAFT pads to multiples of 8 and needs 64 px for its 4-level pyramid at 1/8; DA-Flow pads to 16
    first; SEA-RAFT needs 128 px after padding, at half resolution with ``scale=-1``; OpenCV's DIS 12 px."""
    if name in ("raft", "raft-small", "raft-star-tiny", "dis-raft"):
        return _smallest_side(64, 8)
    if name in ("daflow", "daflow-tiny"):
        return _smallest_side(64, 16)
    if name.startswith("sea-raft"):
        side = _smallest_side(128, 8)
        return side * 2 if scale == -1 else side
    if name == "dis":
        return 12
    return None
