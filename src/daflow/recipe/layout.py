"""The run folder of a recipe, declared once: where every stage writes, what it reads, and which stages it needs.

``RUN/<stage>/done.json`` marks a finished stage. Every other module (the recipe itself, its report, the bundling)
asks :class:`RunLayout` for paths instead of spelling them, and :meth:`RunLayout.require` turns a missing input
stage into one clear message (``daflow train recipe tiny --only daflow`` before ``analyze`` has run, for instance).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: the stages each stage reads from (only the direct ones; ``data`` feeds almost everything)
NEEDS: dict[str, tuple[str, ...]] = {
    "data": (),
    "vae": ("data",),
    "dit0": ("data", "vae"),
    "lift": ("data", "vae", "dit0"),
    "one_step": ("data", "vae", "lift"),
    "fidelity": ("data", "vae", "one_step"),
    "gate": ("data",),
    "raft": ("data",),
    "pseudo_gt": ("data", "raft"),
    "analyze": ("data", "vae", "dit0", "lift", "pseudo_gt"),
    "daflow": ("data", "vae", "lift", "raft", "pseudo_gt", "analyze"),
    "daflow_gt": ("data", "vae", "lift", "raft", "analyze"),
    "raft_star": ("data", "raft", "pseudo_gt"),
    "baseline": ("data", "vae", "dit0", "raft", "pseudo_gt", "analyze"),
    "report": ("data", "vae", "raft", "raft_star", "daflow", "daflow_gt", "baseline", "analyze", "pseudo_gt"),
}


@dataclass(frozen=True)
class RunLayout:
    """Paths of a recipe run rooted at ``root``."""

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    @property
    def recipe_json(self) -> Path:
        return self.root / "recipe.json"

    def stage(self, name: str) -> Path:
        return self.root / name

    def done(self, name: str) -> Path:
        return self.root / name / "done.json"

    def is_done(self, name: str) -> bool:
        return self.done(name).is_file()

    def data(self, split: str, kind: str) -> Path:
        """``data/<split>/<kind>``: ``hq`` / ``lq`` frames, ``gt`` exact flow, ``pgt`` pseudo ground truth."""
        return self.root / "data" / split / kind

    @property
    def vae(self) -> Path:
        return self.root / "vae" / "vae"

    def transformer(self, stage: str) -> Path:
        """The DiT4SR written by ``dit0`` or ``lift``."""
        return self.root / stage / "transformer"

    def raft_weights(self, stage: str) -> Path:
        """RAFT-small weights written by ``raft`` or ``raft_star``."""
        return self.root / stage / "model" / "raft.safetensors"

    def flow_model(self, stage: str) -> Path:
        """The DA-Flow model folder written by ``daflow``, ``daflow_gt`` or ``baseline``."""
        return self.root / stage / "model"

    def flow_record(self, stage: str) -> Path:
        return self.root / stage / "train_flow.json"

    @property
    def report(self) -> Path:
        return self.root / "report"

    def require(self, stage: str) -> None:
        """Raise one clear error naming the stages ``stage`` needs that have not finished."""
        missing = [s for s in NEEDS[stage] if not self.is_done(s)]
        if missing:
            raise FileNotFoundError(
                f"{self.root}: stage {stage} needs {', '.join(missing)} first ({', '.join(str(self.done(s)) for s in missing)} "
                "missing); run the recipe without --only, or with --only for those stages"
            )
