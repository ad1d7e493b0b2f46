"""The one table of the flow models daflow runs by name (no torch import, so that the command line starts fast).

Each :class:`ModelEntry` says everything a command, the library or a provenance record needs to know about a name
before anything is loaded: its family (which builder serves it), whether it needs published weights and where they
come from, the folder it is bundled in, its default refinement iterations, how many frames it takes per call and the
smallest frame it accepts. :func:`daflow.load_model` builds every one of them.
"""

from __future__ import annotations

from dataclasses import dataclass

FAMILIES = ("classical", "raft", "sea-raft", "ptlflow", "refiner", "daflow")


@dataclass(frozen=True)
class ModelEntry:
    """``family``: one of :data:`FAMILIES`. ``published``: where the official weights come from ("" = none needed).
    ``bundled``: the folder below ``daflow/weights/`` that holds the shipped weights ("" = not shipped).
    ``iters``: default refinement iterations (None: the preset's). ``chunk``: frames per call (2: pairwise, 3:
    DA-Flow's chunks, App. A.0.4). ``padded_min``/``multiple``: the input is padded to a multiple of ``multiple`` and
    must then reach ``padded_min`` pixels a side (None: no known limit)."""

    description: str
    family: str
    published: str = ""
    bundled: str = ""
    iters: int | None = None
    chunk: int = 2
    padded_min: int | None = None
    multiple: int = 1

    @property
    def needs_weights(self) -> bool:
        """A published file is needed (``--weights``) unless random weights are asked for."""
        return bool(self.published)

    @property
    def takes_weights(self) -> bool:
        """The model reads weights at all (every family but the classical one)."""
        return self.family != "classical"


_RAFT = "the official {} comes from https://github.com/princeton-vl/RAFT (download_models.sh)"
_SEA = (
    "the official checkpoints (e.g. Tartan-C-T-TSKH-spring540x960-M.pth) are linked from "
    "https://github.com/princeton-vl/SEA-RAFT and on Hugging Face (MemorySlices/Tartan-C-T-TSKH-spring540x960-M)"
)
_DAFLOW = "a model folder written by `daflow train flow` (config.json, flownet.safetensors, transformer/, vae/)"
#: RAFT's refinement iterations at inference here: the paper's M = 12 (Eq. 18)
RAFT_ITERS = 12
#: DA-Flow's refinement iterations at inference (the paper's setting)
DAFLOW_ITERS = 20
#: DA-Flow's denoising schedule length (§4: a 10-step rectified-flow run)
DENOISE_STEPS = 10
_RAFT_SIZE = {"padded_min": 64, "multiple": 8}  # a 4-level pyramid at 1/8

MODELS: dict[str, ModelEntry] = {
    "dis-raft": ModelEntry(
        "DIS->RAFT refiner, bundled default (RAFT-small warm-started from OpenCV DIS, trained on "
        "degraded synthetic clips with real-size motion)",
        "refiner",
        bundled="dis-raft",
        **_RAFT_SIZE,
    ),
    "daflow-tiny": ModelEntry(
        "DA-Flow-tiny, bundled (trained on synthetic clips by `daflow train recipe tiny`)",
        "daflow",
        bundled="daflow-tiny",
        iters=DAFLOW_ITERS,
        chunk=3,
        padded_min=64,
        multiple=16,
    ),
    "daflow-small": ModelEntry(
        "DA-Flow-small, bundled (the restorer's DiT features in the default's DIS->RAFT refiner, trained by "
        "`daflow train refine --daflow small`)",
        "daflow",
        bundled="daflow-small",
        **_RAFT_SIZE,
    ),
    "daflow": ModelEntry(
        "DA-Flow (the paper's model): --weights FOLDER from `daflow train flow`",
        "daflow",
        published=_DAFLOW,
        iters=DAFLOW_ITERS,
        chunk=3,
        padded_min=64,
        multiple=16,
    ),
    "raft-star-tiny": ModelEntry(
        "RAFT*-tiny, bundled (RAFT-small fine-tuned on degraded synthetic clips by the tiny recipe)",
        "raft",
        bundled="raft-star-tiny",
        iters=RAFT_ITERS,
        **_RAFT_SIZE,
    ),
    "raft": ModelEntry(
        "RAFT-large (Teed & Deng 2020)", "raft", _RAFT.format("raft-things.pth"), iters=RAFT_ITERS, **_RAFT_SIZE
    ),
    "raft-small": ModelEntry("RAFT-small", "raft", _RAFT.format("raft-small.pth"), iters=RAFT_ITERS, **_RAFT_SIZE),
    "sea-raft-s": ModelEntry("SEA-RAFT-S (Wang et al. 2024)", "sea-raft", _SEA, padded_min=128, multiple=8),
    "sea-raft-m": ModelEntry(
        "SEA-RAFT-M (the paper's teacher with --scale -1: spring-M)", "sea-raft", _SEA, padded_min=128, multiple=8
    ),
    "sea-raft-l": ModelEntry(
        "SEA-RAFT-L (the M weights at 12 iterations)", "sea-raft", _SEA, padded_min=128, multiple=8
    ),
    "flowseek-t": ModelEntry(
        "FlowSeek-T (Poggi & Tosi 2025) via ptlflow, extra [baselines]",
        "ptlflow",
        "flowseek_T_*.pth from https://github.com/mattpoggi/flowseek",
        iters=RAFT_ITERS,
    ),
    "flowseek-m": ModelEntry(
        "FlowSeek-M via ptlflow, extra [baselines]",
        "ptlflow",
        "flowseek_M_*.pth from https://github.com/mattpoggi/flowseek",
        iters=RAFT_ITERS,
    ),
    "dis": ModelEntry("OpenCV DIS optical flow (classical, no weights)", "classical", padded_min=12),
    "farneback": ModelEntry("OpenCV Farneback (classical, no weights)", "classical"),
    "zero": ModelEntry("zero flow: no motion, the reference every model must beat", "classical"),
}


def names(*families: str) -> tuple[str, ...]:
    """The model names of ``families`` (all names when none is given), in table order."""
    return tuple(n for n, e in MODELS.items() if not families or e.family in families)


DAFLOW_NAMES = names("daflow")


def entry(name: str, *, flag: str = "model") -> ModelEntry:
    """The table's entry for ``name``; a ``ValueError`` naming ``--flag`` and every known name otherwise."""
    if name not in MODELS:
        raise ValueError(f"--{flag} {name!r} is not a known model; choose one of {', '.join(MODELS)}")
    return MODELS[name]


def min_input_side(name: str, *, scale: int | None = None) -> int | None:
    """The smallest frame side (pixels) model ``name`` accepts, known before any weights are loaded (None: no known
    limit): the smallest side whose padding to the entry's ``multiple`` reaches its ``padded_min``, twice that for
    SEA-RAFT at half resolution (``scale=-1``)."""
    e = entry(name)
    if e.padded_min is None:
        return None
    side = e.padded_min - e.multiple + 1
    return side * 2 if (e.family == "sea-raft" and scale == -1) else side


def help_lines(width: int = 15) -> str:
    """One line a model (name and description), for ``--help`` texts."""
    return "\n".join(f"  {n:{width}s} {e.description}" for n, e in MODELS.items())
