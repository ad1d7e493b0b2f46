"""Dataset specs for ``daflow evaluate --data SPEC``: one string names a benchmark, its root and its options.

Grammar: ``KIND:TARGET[?key=value&key=value]``. A degraded mirror written by ``daflow degrade`` has the layout of
its source (ground truth linked), so the same spec with the mirror's root evaluates on LQ frames.

=================  ==================  ===================================================================
kind               target              options
=================  ==================  ===================================================================
``sintel-clean``   Sintel root         ``scenes=a,b``
``sintel-final``   Sintel root         ``scenes=a,b``
``sintel``         Sintel root         both passes, reported separately (and their mean)
``spring``         Spring root         ``camera=left|right``, ``scenes=all|val|a,b`` (val = SEA-RAFT's
                                       0045, 0047), ``gt=half|full`` (half: GT ``[::2, ::2]``, paper
                                       protocol; full: min over the 2×2 4K candidates, Spring's own)
``tartanair``      TartanAir root      ``split=val|train|all`` (val = FlowSeek's), ``every=N``
``synthetic``      preset name         ``n=8``, ``seed=0``, ``degrade=PRESET|none`` (default none),
                                       ``size=HxW`` (exact-ground-truth clips, degraded on the fly)
``labeled``        LQ clips root       ``labels=DIR`` (required): flow labels of every clip, e.g. the
                                       teacher pseudo ground truth of ``daflow pseudo-gt`` on the HQ clips
                                       (:mod:`daflow.data.labeled`)
``video``          video or frames     ``clean=PATH``: the clean frames of a degraded input; ``start=S``,
                                       ``end=E``, ``stride=N``: a range of both. No ground truth: warping
                                       error (all visible and moving pixels), forward-backward consistency,
                                       zero flow and DIS as reference rows (:mod:`daflow.eval.video_quality`)
=================  ==================  ===================================================================

Examples: ``sintel-final:/data/Sintel``, ``sintel:/data/Sintel-LQ``, ``spring:/data/spring?scenes=val``,
``synthetic:default?n=16&degrade=realbasicvsr``, ``labeled:/data/YouHQ40-LQ?labels=/data/YouHQ40-pgt``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from daflow.data.base import FlowSample

KINDS = ("sintel-clean", "sintel-final", "sintel", "spring", "tartanair", "synthetic", "labeled", "youhq", "video")
_OPTIONS = {
    "sintel-clean": {"scenes"},
    "sintel-final": {"scenes"},
    "sintel": {"scenes"},
    "spring": {"camera", "scenes", "gt"},
    "tartanair": {"split", "every"},
    "synthetic": {"n", "seed", "degrade", "size"},
    "labeled": {"labels"},
    "youhq": {"lq", "degrade"},  # training only (no ground truth): daflow.train.data
    "video": {
        "clean",
        "start",
        "end",
        "stride",
    },  # no ground truth: warping error and FB consistency (daflow.eval.video_quality)
}


@dataclass(frozen=True)
class DatasetSpec:
    kind: str
    target: str
    options: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        query = "&".join(f"{k}={v}" for k, v in self.options.items())
        return f"{self.kind}:{self.target}" + (f"?{query}" if query else "")


@dataclass
class EvalSet:
    """One table row group: ``label`` (e.g. ``sintel-final``), a dataset of 2-frame :class:`FlowSample`, and
    whether the metric takes Spring's min over 2×2 full-resolution candidates."""

    label: str
    dataset: Sequence[FlowSample]
    spring_min: bool = False
    spec: str = ""


def parse_dataset_spec(text: str) -> DatasetSpec:
    """Parse ``KIND:TARGET[?k=v&...]``; raises ``ValueError`` naming what was expected."""
    kind, sep, rest = text.partition(":")
    if not sep or not rest:
        raise ValueError(
            f"--data {text!r}: expected KIND:TARGET (e.g. sintel-final:/data/Sintel); kinds: {', '.join(KINDS)}"
        )
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise ValueError(f"--data {text!r}: unknown dataset kind {kind!r}; choose one of {', '.join(KINDS)}")
    target, _, query = rest.partition("?")
    options = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=False)) if query else {}
    unknown = set(options) - _OPTIONS[kind]
    if unknown:
        raise ValueError(
            f"--data {text!r}: unknown option(s) {sorted(unknown)} for {kind}; "
            f"allowed: {sorted(_OPTIONS[kind]) or 'none'}"
        )
    return DatasetSpec(kind, target, options)


def _int(spec: DatasetSpec, key: str, default: int) -> int:
    try:
        return int(spec.options.get(key, default))
    except ValueError:
        raise ValueError(f"--data {spec}: option {key} must be an integer, got {spec.options[key]!r}") from None


def _scenes(spec: DatasetSpec) -> list[str] | None:
    value = spec.options.get("scenes", "all")
    return None if value in ("", "all") else [s for s in value.split(",") if s]


class _DegradedSynthetic(Sequence):
    """Synthetic clips whose frames are degraded with a per-clip seed (deterministic, order-free)."""

    def __init__(self, clips, preset: str, seed: int):
        self.clips, self.preset, self.seed = clips, preset, seed

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> FlowSample:  # type: ignore[override]
        import numpy as np

        from daflow.data.degrade import degrade_clip, sample_params

        sample = self.clips[index]
        f, h, w = sample.frames.shape[:3]
        clip_seed = int(np.random.SeedSequence([self.seed, index, 1]).generate_state(1)[0])
        frames = degrade_clip(sample.frames, sample_params(self.preset, f, (h, w), clip_seed))
        return dataclasses.replace(sample, frames=frames, meta=dict(sample.meta, degradation=self.preset))


def synthetic_clips(spec: DatasetSpec, *, num_frames: int, default_n: int):
    """The :class:`~daflow.data.synthetic.SyntheticClips` of a ``synthetic:PRESET?n=&seed=&size=HxW`` spec."""
    from daflow.data.synthetic import SYNTHETIC_PRESETS, SyntheticClips

    if spec.target not in SYNTHETIC_PRESETS:
        raise ValueError(
            f"--data {spec}: unknown synthetic preset {spec.target!r}; choose one of {sorted(SYNTHETIC_PRESETS)}"
        )
    config = dataclasses.replace(SYNTHETIC_PRESETS[spec.target], num_frames=num_frames)
    if "size" in spec.options:
        try:
            h, w = (int(v) for v in spec.options["size"].lower().split("x"))
        except ValueError:
            raise ValueError(f"--data {spec}: size must be HxW, got {spec.options['size']!r}") from None
        config = dataclasses.replace(config, height=h, width=w)
    n = _int(spec, "n", default_n)
    if n < 1:
        raise ValueError(f"--data {spec}: option n (the number of clips) must be at least 1, got {n}")
    return SyntheticClips(n, config=config, seed=_int(spec, "seed", 0))


def build_eval_sets(spec: DatasetSpec | str, *, num_frames: int = 2, stride: int = 1) -> list[EvalSet]:
    """The datasets of a spec, as ``num_frames``-frame samples (windows ``stride`` apart) with ground truth."""
    spec = parse_dataset_spec(spec) if isinstance(spec, str) else spec
    kind = spec.kind
    clip = {"num_frames": num_frames, "stride": stride}
    if kind == "youhq":
        raise ValueError(
            f"--data {spec}: youhq clips have no flow ground truth; label them with daflow pseudo-gt and "
            "use labeled:LQ_ROOT?labels=DIR"
        )
    if kind == "labeled":
        from daflow.data.labeled import LabeledClips

        if not spec.options.get("labels"):
            raise ValueError(f"--data {spec}: labeled needs labels=DIR (the flow labels, e.g. from daflow pseudo-gt)")
        return [EvalSet("labeled", LabeledClips(spec.target, spec.options["labels"], **clip), spec=str(spec))]
    if kind.startswith("sintel"):
        from daflow.data.sintel import Sintel

        passes = ("clean", "final") if kind == "sintel" else (kind.split("-")[1],)
        return [
            EvalSet(f"sintel-{p}", Sintel(spec.target, dstype=p, scenes=_scenes(spec), **clip), spec=str(spec))
            for p in passes
        ]
    if kind == "spring":
        from daflow.data.spring import SPRING_VAL_SCENES, Spring

        scenes = list(SPRING_VAL_SCENES) if spec.options.get("scenes") == "val" else _scenes(spec)
        gt = spec.options.get("gt", "half")
        if gt not in ("half", "full"):
            raise ValueError(f"--data {spec}: gt must be half or full, got {gt!r}")
        ds = Spring(
            spec.target,
            camera=spec.options.get("camera", "left"),
            scenes=scenes,
            full_resolution_gt=gt == "full",
            **clip,
        )
        return [EvalSet("spring", ds, spring_min=gt == "full", spec=str(spec))]
    if kind == "tartanair":
        from daflow.data.tartanair import TartanAir

        every = _int(spec, "every", 0) or None
        return [
            EvalSet(
                "tartanair",
                TartanAir(spec.target, split=spec.options.get("split", "val"), every=every, **clip),
                spec=str(spec),
            )
        ]
    # synthetic
    clips: Any = synthetic_clips(spec, num_frames=max(num_frames, 2), default_n=8)
    seed = clips.seed
    degrade = spec.options.get("degrade", "none")
    label = f"synthetic-{spec.target}"
    if degrade != "none":
        from daflow.data.degrade.config import get_preset

        get_preset(degrade)  # fail early on an unknown preset
        clips = _DegradedSynthetic(clips, degrade, seed)
        label += f"-{degrade}"
    return [EvalSet(label, clips, spec=str(spec))]
