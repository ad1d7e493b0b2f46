"""The recipe's settings: :class:`RecipeConfig`, its named presets (``tiny``, ``smoke``, ``restore``,
``restore-smoke``) and the stage names, apart from the code that runs them (:mod:`daflow.recipe.run`) so that the
report (:mod:`daflow.recipe.reproduce`) can name a run's preset without importing the runner."""

from __future__ import annotations

from dataclasses import dataclass, replace

TEACHERS = ("raft", "dis")  # pseudo-GT teacher candidates (see ``pseudo_gt`` above)
STAGES = (
    "data",
    "vae",
    "dit0",
    "lift",
    "one_step",
    "fidelity",
    "gate",
    "raft",
    "pseudo_gt",
    "analyze",
    "daflow",
    "daflow_gt",
    "raft_star",
    "baseline",
    "report",
)
RESTORER_STAGES = ("one_step", "fidelity", "gate")  # the restore preset's own stages, after data, vae, dit0 and lift
FLOW_STAGES = tuple(s for s in STAGES if s not in RESTORER_STAGES)  # the tiny recipe's stages


@dataclass(frozen=True)
class RecipeConfig:
    """Sizes and step budgets. ``dit_layers``: blocks of the recipe's DiT (more than the 4 tapped, so that the
    analysis has a choice to make)."""

    size: tuple[int, int] = (128, 128)
    crop: tuple[int, int] = (64, 64)
    synthetic: str = "default"
    degrade: str = "realbasicvsr"
    train_clips: int = 256
    val_clips: int = 8
    eval_clips: int = 16
    frames: int = 3
    dit_layers: int = 6
    taps: int = 4
    vae_steps: int = 1500
    dit0_steps: int = 2400
    lift_steps: int = 1200
    raft_steps: int = 3000
    flow_steps: int = 2000
    star_steps: int = 2000  # RAFT* gets stage 2's step budget (App. C.2: "the identical setup")
    analysis_steps: int = 10
    teacher: str = "best"
    seed: int = 0
    vae_preset: str = "tiny"  # the VAE's width (daflow.models.vae.VAE_PRESETS)
    dit_heads: int = 2  # the DiT's width: heads × head_dim (the tiny DiT4SR preset's 2 × 8)
    dit_head_dim: int = 8
    vae_batch: int = 4
    vae_images: tuple[str, ...] = ("hq", "lq")  # the frames the VAE learns to reconstruct
    extra_degrades: tuple[str, ...] = ()  # more LQ mirrors of the training clips (data/train/lq_<preset>)
    one_step_steps: int = 1200  # the one-step restorer fine-tune (daflow.train.one_step)
    # the one-step fine-tune's LQ mirrors (the recipe's `degrade` preset or ones of `extra_degrades`); empty: all of them
    one_step_mix: tuple[str, ...] = ()
    one_step_lr: float = 1e-3
    fidelity_steps: int = 2500  # the restorer's fidelity head (daflow.train.fidelity)
    fidelity_head: str = "video"  # its preset (daflow.models.fidelity.FIDELITY_PRESETS)
    # the head's training mixture, one LQ mirror per slot (the recipe's `degrade` preset or one of `extra_degrades`); a
    # mirror named twice is drawn twice as often (codec damage: a head trained on an even mixture fell below the input
    # on real H.264 damage, one trained on it alone rose above it)
    fidelity_mix: tuple[str, ...] = ("realbasicvsr", "h264", "mild", "h264")
    fidelity_flow: str = "dis-raft"  # the flow model that aligns a video head's neighbours
    fidelity_prefilter: bool = False  # train the head on temporally filtered LQ frames (what `daflow restore` gives it)
    fidelity_batch: int = 4
    stages: tuple[str, ...] = FLOW_STAGES  # the stages this preset runs

    def __post_init__(self):
        object.__setattr__(self, "size", tuple(int(v) for v in self.size))
        object.__setattr__(self, "stages", tuple(self.stages))
        object.__setattr__(self, "vae_images", tuple(self.vae_images))
        object.__setattr__(self, "extra_degrades", tuple(self.extra_degrades))
        object.__setattr__(self, "fidelity_mix", tuple(self.fidelity_mix))
        object.__setattr__(self, "one_step_mix", tuple(self.one_step_mix))
        unknown = set(self.stages) - set(STAGES)
        if unknown:
            raise ValueError(f"unknown recipe stages {sorted(unknown)}; stages: {', '.join(STAGES)}")
        object.__setattr__(self, "crop", tuple(int(v) for v in self.crop))
        if self.teacher not in TEACHERS + ("best",):
            raise ValueError(f"teacher must be one of {TEACHERS + ('best',)}, got {self.teacher!r}")
        mirrors = self.degrades
        if [m for m in self.one_step_mix if m not in mirrors]:
            raise ValueError(f"one_step_mix must name LQ mirrors of this recipe ({mirrors}), got {self.one_step_mix}")
        if "fidelity" in self.stages:
            unknown = [m for m in self.fidelity_mix if m not in mirrors]
            if unknown or not self.fidelity_mix:
                raise ValueError(
                    f"fidelity_mix must name LQ mirrors of this recipe ({mirrors}), got {self.fidelity_mix}"
                )
        if self.taps > self.dit_layers:
            raise ValueError(f"taps ({self.taps}) cannot exceed dit_layers ({self.dit_layers})")

    @property
    def degrades(self) -> tuple[str, ...]:
        """The degradation presets of the training clips' LQ mirrors: ``degrade``, then ``extra_degrades``."""
        return (self.degrade, *self.extra_degrades)


# every stage for a few steps: what the test suite runs
_SMOKE = RecipeConfig(
    size=(64, 64),
    train_clips=4,
    val_clips=1,
    eval_clips=1,
    dit_layers=5,
    vae_steps=2,
    dit0_steps=2,
    lift_steps=2,
    raft_steps=2,
    flow_steps=2,
    star_steps=2,
    analysis_steps=2,
)
_RESTORE_RECIPE = ("data", "vae", "dit0", "lift", *RESTORER_STAGES)

RECIPE_PRESETS: dict[str, RecipeConfig] = {
    "tiny": RecipeConfig(),
    "smoke": _SMOKE,
    # the tiny restorer of `daflow restore`: data (with codec-only and mild LQ mirrors too), a wider VAE trained longer
    # on the clean frames only (a restorer's output can be no better than the VAE's reconstruction), a 4x wider DiT
    # (at the tiny width its x0 prediction never beat copying the LQ latent), per frame, lifted, then fine-tuned for
    # the one-step call of `daflow restore` with a decoded-image fidelity loss
    "restore": RecipeConfig(
        vae_preset="small",
        vae_batch=8,
        vae_images=("hq",),
        extra_degrades=("h264", "mild"),
        stages=_RESTORE_RECIPE,
        vae_steps=10000,
        dit_heads=4,
        dit_head_dim=16,
        dit0_steps=6000,
        lift_steps=2000,
        fidelity_steps=5000,
        fidelity_head="video-wide",
    ),
    # the restore preset's stages and options for a few steps
    "restore-smoke": replace(
        _SMOKE,
        vae_preset="small",
        vae_images=("hq",),
        extra_degrades=("h264",),
        one_step_mix=("realbasicvsr",),
        fidelity_mix=("realbasicvsr", "h264"),
        fidelity_prefilter=True,
        stages=_RESTORE_RECIPE,
        one_step_steps=2,
        fidelity_steps=2,
    ),
}
