"""Training clips for both stages (paper §5.1): F-frame HQ/LQ crops, with flow labels where there are any.

Sources (``--data`` of ``daflow train``, the spec grammar of :mod:`daflow.data.specs`):

===========================================  ====================================================================
``synthetic:PRESET?n=N&size=HxW&seed=S``     exact-ground-truth clips; LQ degraded on the fly (``degrade=``)
``youhq:ROOT``                               HQ clips (videos / frame folders, e.g. YouHQ); LQ degraded on the fly
``youhq:ROOT?lq=MIRROR``                     HQ clips + their ``daflow degrade`` mirror (paired by clip path)
``labeled:LQ_ROOT?labels=DIR``               LQ clips + flow labels (``daflow pseudo-gt``); no HQ frames
===========================================  ====================================================================

Items are addressed by a running **sample counter** ``i`` (``step · batch + slot``), not by clip: the clip is
``perm_e[i mod N]`` with a permutation per epoch ``e = i // N`` drawn from the seed, and the crop and the
degradation are drawn from ``SeedSequence([seed, i])``. A run is therefore a pure function of its seed and step,
and resuming at step s reproduces the uninterrupted run exactly, with any number of loader workers.

On-the-fly degradation crops first and degrades the crop (as RealBasicVSR's training does); a prepared mirror
degrades whole frames (as the paper's YouHQ data).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from daflow.data.base import DatasetLayoutError, FlowSample
from daflow.data.specs import DatasetSpec, parse_dataset_spec

TRAIN_KINDS = ("synthetic", "youhq", "labeled")


def _window_pairs(hq_root: Path, lq_root: Path, num_frames: int, stride: int):
    """HQ and LQ :class:`~daflow.data.video.VideoFrames` over the same clips (LQ found by the HQ clip's path)."""
    from daflow.data.labeled import find_clip_roots, label_dir
    from daflow.data.video import VideoFrames

    hq_clips = find_clip_roots(hq_root)
    if not hq_clips:
        raise DatasetLayoutError(f"youhq: no videos or frame folders below {hq_root}")
    lq_clips = []
    for clip in hq_clips:
        as_folder = label_dir(hq_root, clip, lq_root)
        same = lq_root / clip.relative_to(hq_root) if clip != hq_root else lq_root
        lq = as_folder if as_folder.is_dir() else same
        if not lq.exists():
            raise DatasetLayoutError(f"youhq: no LQ clip for {clip} in the mirror {lq_root} (expected {as_folder})")
        lq_clips.append(lq)
    hq = VideoFrames(hq_clips, num_frames=num_frames, stride=stride)
    lq = VideoFrames(lq_clips, num_frames=num_frames, stride=stride)
    if len(hq) != len(lq):
        raise DatasetLayoutError(
            f"youhq: {hq_root} gives {len(hq)} windows of {num_frames} frames but the mirror "
            f"{lq_root} gives {len(lq)}; the mirror must have the same frame counts"
        )
    return hq, lq


@dataclasses.dataclass
class ClipSource:
    """What a training spec resolved to: ``clips`` (FlowSample windows), what their frames are (``"hq"`` or
    ``"lq"``), an aligned LQ mirror, the on-the-fly degradation preset, and whether there are flow labels."""

    clips: Sequence[FlowSample]
    frames_are: str
    lq_mirror: Sequence[FlowSample] | None = None
    degrade: str | None = None
    has_flow: bool = False
    spec: str = ""


def build_clip_source(
    spec: DatasetSpec | str, *, num_frames: int, stride: int = 1, degrade: str | None = "realbasicvsr"
) -> ClipSource:
    """Resolve a training ``--data`` spec (see the module docstring). ``degrade`` is the on-the-fly preset for
    sources without LQ frames (a ``degrade=`` option of the spec overrides it; ``none`` turns it off)."""
    spec = parse_dataset_spec(spec) if isinstance(spec, str) else spec
    if spec.kind not in TRAIN_KINDS:
        raise ValueError(f"--data {spec}: training reads {', '.join(TRAIN_KINDS)} sources, not {spec.kind}")
    preset = spec.options.get("degrade", degrade)
    preset = None if preset in (None, "none") else preset
    if preset is not None:
        from daflow.data.degrade.config import get_preset

        get_preset(preset)  # unknown presets fail here, naming the choices
    if spec.kind == "labeled":
        from daflow.data.specs import build_eval_sets

        (eval_set,) = build_eval_sets(spec, num_frames=num_frames, stride=stride)
        return ClipSource(eval_set.dataset, "lq", has_flow=True, spec=str(spec))
    if spec.kind == "synthetic":
        from daflow.data.specs import synthetic_clips

        clips = synthetic_clips(spec, num_frames=num_frames, default_n=64)
        return ClipSource(clips, "hq", degrade=preset, has_flow=True, spec=str(spec))
    # youhq
    from daflow.data.video import VideoFrames

    root = Path(spec.target)
    if not root.exists():
        raise DatasetLayoutError(f"--data {spec}: {root} not found (expected a folder of videos / frame folders)")
    if spec.options.get("lq"):
        hq, lq = _window_pairs(root, Path(spec.options["lq"]), num_frames, stride)
        return ClipSource(hq, "hq", lq_mirror=lq, spec=str(spec))
    from daflow.data.labeled import find_clip_roots

    clips = find_clip_roots(root)
    if not clips:
        raise DatasetLayoutError(f"--data {spec}: no videos or frame folders below {root}")
    return ClipSource(VideoFrames(clips, num_frames=num_frames, stride=stride), "hq", degrade=preset, spec=str(spec))


def epoch_clip_index(i: int, n: int, seed: int) -> int:
    """The clip of sample counter ``i`` among ``n``: ``perm_e[i mod n]`` with a permutation per epoch ``e = i // n``
    drawn from ``seed`` (module docstring)."""
    epoch, slot = divmod(i, n)
    return int(np.random.default_rng(np.random.SeedSequence([seed, epoch, 7])).permutation(n)[slot])


class TrainingClips(torch.utils.data.Dataset):
    """Sample ``i`` of the run (see the module docstring) as a dict of tensors: ``lq`` ``[F, 3, h, w]`` (float,
    0..255), and where available ``hq`` (same), ``flow`` ``[F−1, 2, h, w]`` and ``valid`` ``[F−1, h, w]``."""

    def __init__(
        self, source: ClipSource, *, crop: tuple[int, int] | None = None, seed: int = 0, require: Sequence[str] = ()
    ):
        self.source, self.crop, self.seed = source, crop, seed
        if len(source.clips) == 0:
            raise ValueError(f"--data {source.spec}: no clips")
        have = {"lq"} | ({"hq"} if source.frames_are == "hq" else set()) | ({"flow"} if source.has_flow else set())
        if source.frames_are == "hq" and source.lq_mirror is None and source.degrade is None:
            have.discard("lq")
        missing = set(require) - have
        if missing:
            raise ValueError(
                f"--data {source.spec}: this training needs {sorted(missing)}, which the source does not "
                f"give (it gives {sorted(have)})"
            )

    def __len__(self) -> int:  # the counter is unbounded; a DataLoader only needs a length for its sampler
        return 2**62

    def clip_index(self, i: int) -> int:
        return epoch_clip_index(i, len(self.source.clips), self.seed)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        src = self.source
        index = self.clip_index(i)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, i]))
        sample = src.clips[index]
        frames = sample.frames
        f, h, w = frames.shape[:3]
        top = left = 0
        ch, cw = h, w
        if self.crop is not None:
            ch, cw = self.crop
            if ch > h or cw > w:
                raise ValueError(f"--crop {ch}x{cw} is larger than the frames {h}x{w} of {sample.meta}")
            top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        win = (slice(None), slice(top, top + ch), slice(left, left + cw))
        out: dict[str, torch.Tensor] = {}
        crop = np.ascontiguousarray(frames[win])
        if src.frames_are == "lq":
            out["lq"] = _frames(crop)
        else:
            out["hq"] = _frames(crop)
            if src.lq_mirror is not None:
                lq = src.lq_mirror[index].frames
                if lq.shape != frames.shape:
                    raise DatasetLayoutError(
                        f"LQ mirror frames {lq.shape} differ from the HQ frames {frames.shape} "
                        f"({sample.meta}); degrade with the HQ size kept"
                    )
                out["lq"] = _frames(np.ascontiguousarray(lq[win]))
            elif src.degrade is not None:
                from daflow.data.degrade import degrade_clip, sample_params

                clip_seed = int(rng.integers(0, 2**31 - 1))
                out["lq"] = _frames(degrade_clip(crop, sample_params(src.degrade, f, (ch, cw), clip_seed)))
        if sample.flow is not None:
            out["flow"] = torch.from_numpy(np.ascontiguousarray(sample.flow[win])).permute(0, 3, 1, 2).float()
            valid = sample.valid if sample.valid is not None else np.ones(sample.flow.shape[:3], bool)
            out["valid"] = torch.from_numpy(np.ascontiguousarray(valid[win])).float()
        return out


def _frames(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float()


class StepSampler(torch.utils.data.Sampler):
    """Batches of sample counters for steps ``start, start+1, …`` (``batch`` per process; process ``rank`` of
    ``world`` takes its own slice of the global batch)."""

    def __init__(self, batch: int, *, start_step: int = 0, rank: int = 0, world: int = 1):
        self.batch, self.start, self.rank, self.world = batch, start_step, rank, world

    def __iter__(self):
        step = self.start
        while True:
            base = (step * self.world + self.rank) * self.batch
            yield list(range(base, base + self.batch))
            step += 1

    def __len__(self) -> int:
        return 2**62


class MixedClips(torch.utils.data.Dataset):
    """Several training datasets as one: sample ``i`` is sample ``i // k`` of dataset ``i % k`` (``k`` datasets), so
    every batch of ``k`` or more consecutive counters mixes all of them and a run stays a pure function of the
    counter."""

    def __init__(self, datasets: Sequence[torch.utils.data.Dataset]):
        if not datasets:
            raise ValueError("MixedClips needs at least one dataset")
        self.datasets = list(datasets)

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        k = len(self.datasets)
        return self.datasets[i % k][i // k]
