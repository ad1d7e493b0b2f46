"""Degrade whole datasets into a mirror tree (``daflow degrade``).

The mirror has the input's layout and file names with LQ frames of the same sizes; ground-truth folders are
symlinked (or copied), so the dataset readers of :mod:`daflow.data` read the mirror with no extra argument.
Each clip (a scene, trajectory or video, split into balanced chunks of at most ``max_clip_frames`` frames)
gets its own seed, derived from the run seed and the clip's relative path, so results do not depend on
the order, the number of workers or which clips were already done. With more workers than clips (one long folder
or video), the workers share each clip's per-frame stages instead (the codec passes stay serial): same bytes.
Finished clips are recorded under ``OUT/.daflow-degrade/`` and skipped on the next run; frames are written
atomically. ``manifest.json`` lists every sampled parameter per clip; it is written once every clip is done.
``shard`` (:mod:`daflow.shard`) degrades every N-th clip of the sorted clip list: N shards write exactly the mirror of
one run (per-clip seeds), and the manifest appears when a run finds all clips done (the same command without
``--shard``, run last, degrades nothing).

Layouts (``KINDS``): ``frames`` (ROOT is one folder of frames = one clip), ``video`` (ROOT is one video
file; LQ frames go to ``OUT/frame_%06d.png``), ``sintel``, ``spring``, ``tartanair``, ``youhq`` (each video
becomes a folder ``OUT/<relative path without suffix>/frame_%06d.png``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import multiprocessing as mp
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

import daflow
from daflow.choices import MIRROR_KINDS as KINDS
from daflow.data.base import DatasetLayoutError, natural_key, require_dir
from daflow.data.degrade.config import DegradationConfig, get_preset
from daflow.data.degrade.params import DegradationParams, sample_params
from daflow.data.degrade.pipeline import check_clip, degrade_clip, init_worker
from daflow.data.video import (
    FrameSource,
    count_video_frames,
    frame_indices,
    list_frame_files,
    read_video,
)
from daflow.files import (
    atomic_write_text,
    check_output_dir,
    claim_run,
    read_image,
    read_json,
    write_image,
)
from daflow.shard import WHOLE, Shard

STATE_DIR = ".daflow-degrade"
PREVIEW = f"{STATE_DIR}/preview.png"  # --preview's contact sheet


@dataclass(frozen=True)
class Sequence_:
    """One input sequence: image files, or a video file read by index."""

    seq_id: str  # relative path, used for seeds and markers
    frames: tuple[Path, ...] | None
    video: Path | None
    length: int
    out_dir: Path  # relative to OUT
    out_names: tuple[str, ...]
    indices: tuple[int, ...] | None = None  # the video frames read (None: all), for a --start/--end/--stride range


@dataclass(frozen=True)
class ClipJob:
    clip_id: str
    seq: Sequence_
    start: int
    count: int


@dataclass(frozen=True)
class MirrorPlan:
    sequences: list[Sequence_]
    links: list[tuple[Path, Path]]  # (source, relative destination) of ground truth and other untouched entries


# ------------------------------------------------------------------------------------------- discovery


def _frame_seq(root: Path, folder: Path) -> Sequence_:
    files = list_frame_files(folder)
    rel = folder.relative_to(root) if folder != root else Path(".")
    seq_id = str(rel) if folder != root else folder.name
    return Sequence_(seq_id, tuple(files), None, len(files), rel, tuple(f.name for f in files))


def _video_seq(root: Path, video: Path) -> Sequence_:
    n = count_video_frames(video)
    rel = video.relative_to(root) if video != root else Path(video.name)
    out_dir = Path(".") if video == root else rel.with_suffix("")
    return Sequence_(str(rel), None, video, n, out_dir, tuple(f"frame_{i:06d}.png" for i in range(n)))


def plan_mirror(kind: str, root: Path) -> MirrorPlan:
    """Find the sequences to degrade and the entries to link, for a dataset of ``kind``."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
    seqs: list[Sequence_] = []
    links: list[tuple[Path, Path]] = []
    if kind == "frames":
        if root.is_file():
            raise ValueError(f"frames: {root} is a file; give the folder of frames (or use `daflow degrade video`)")
        seqs.append(_frame_seq(root, require_dir(root, "frames: a folder of frames")))
        FrameSource(root).check_sizes()
    elif kind == "video":
        if not root.is_file():
            raise FileNotFoundError(f"video: expected a video file, {root} not found")
        seqs.append(_video_seq(root, root))
    elif kind == "sintel":
        splits = [s for s in ("training", "test") if (root / s).is_dir()]
        if not splits:
            raise DatasetLayoutError(f"sintel: expected folder {root / 'training'} not found")
        for split in splits:
            for entry in sorted((root / split).iterdir()):
                if entry.name in ("clean", "final", "albedo") and entry.is_dir():
                    for scene in sorted(p for p in entry.iterdir() if p.is_dir()):
                        seqs.append(_frame_seq(root, scene))
                else:
                    links.append((entry, entry.relative_to(root)))
    elif kind == "spring":
        splits = [s for s in ("train", "test") if (root / s).is_dir()]
        if not splits:
            raise DatasetLayoutError(f"spring: expected folder {root / 'train'} not found")
        for split in splits:
            for scene in sorted(p for p in (root / split).iterdir() if p.is_dir()):
                for entry in sorted(scene.iterdir()):
                    if entry.is_dir() and entry.name in ("frame_left", "frame_right"):
                        seqs.append(_frame_seq(root, entry))
                    else:
                        links.append((entry, entry.relative_to(root)))
    elif kind == "tartanair":
        from daflow.data.tartanair import find_trajectories

        trajs = find_trajectories(root)
        if not trajs:
            raise DatasetLayoutError(f"tartanair: no trajectory folder (with image_left/ and flow/) below {root}")
        for traj in trajs:
            for entry in sorted(traj.iterdir()):
                if entry.is_dir() and entry.name.startswith("image_"):
                    seqs.append(_frame_seq(root, entry))
                else:
                    links.append((entry, entry.relative_to(root)))
    else:  # youhq
        from daflow.data.youhq import find_clips

        if not root.is_dir():
            raise DatasetLayoutError(f"youhq: expected folder {root} not found")
        for clip in find_clips(root):
            seqs.append(_video_seq(root, clip) if clip.is_file() else _frame_seq(root, clip))
    if not seqs:
        raise DatasetLayoutError(f"{kind}: no frame sequences found below {root}")
    return MirrorPlan(seqs, links)


def select_frames(seq: Sequence_, start: int = 0, end: int | None = None, stride: int = 1) -> Sequence_:
    """Frames ``start, start+stride, …`` below ``end`` of a sequence (``daflow degrade frames|video --start ...``)."""
    sel = frame_indices(seq.length, start, end, stride, what=seq.seq_id)
    names = tuple(seq.out_names[i] for i in sel)
    if seq.video is None:
        return dataclasses.replace(seq, frames=tuple(seq.frames[i] for i in sel), length=len(sel), out_names=names)
    return dataclasses.replace(seq, length=len(sel), out_names=names, indices=tuple(sel))


def split_jobs(seq: Sequence_, max_clip_frames: int) -> list[ClipJob]:
    """Balanced chunks of at most ``max_clip_frames`` frames."""
    n_chunks = max(1, math.ceil(seq.length / max_clip_frames))
    bounds = np.linspace(0, seq.length, n_chunks + 1).round().astype(int)
    if n_chunks == 1:
        return [ClipJob(seq.seq_id, seq, 0, seq.length)]
    return [
        ClipJob(f"{seq.seq_id}#{a:06d}-{b - 1:06d}", seq, int(a), int(b - a)) for a, b in zip(bounds[:-1], bounds[1:])
    ]


def clip_seed(run_seed: int, clip_id: str) -> int:
    """Stable per-clip seed from the run seed and the clip id."""
    digest = hashlib.sha256(f"{run_seed}:{clip_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _marker(out: Path, clip_id: str) -> Path:
    return out / STATE_DIR / "done" / (hashlib.sha1(clip_id.encode()).hexdigest() + ".json")


# ------------------------------------------------------------------------------------------- execution


def read_job_frames(job: ClipJob) -> np.ndarray:
    if job.seq.video is not None:
        if job.seq.indices is None:
            return check_clip(read_video(job.seq.video, job.start, job.count))
        idx = job.seq.indices[job.start : job.start + job.count]
        block = read_video(job.seq.video, idx[0], idx[-1] - idx[0] + 1)
        return check_clip(block[[i - idx[0] for i in idx]])
    paths = job.seq.frames[job.start : job.start + job.count]
    frames = [read_image(p, strict=True) for p in paths]
    shapes = {f.shape for f in frames}
    if len(shapes) > 1:
        raise ValueError(f"{job.seq.seq_id}: frames have different sizes {sorted(shapes)}; a clip needs one size")
    return check_clip(frames)


def run_job(job: ClipJob, out: Path, config: DegradationConfig, run_seed: int, preview: bool, pool=None) -> dict:
    """Degrade one clip, write its frames and its done-marker; returns the manifest entry (and a preview row).
    ``pool``: worker processes for the clip's per-frame stages (:func:`degrade_clip`)."""
    frames = read_job_frames(job)
    params = sample_params(config, len(frames), frames.shape[1:3], clip_seed(run_seed, job.clip_id))
    lq = degrade_clip(frames, params, pool=pool)
    names = job.seq.out_names[job.start : job.start + job.count]
    for name, frame in zip(names, lq):
        write_image(out / job.seq.out_dir / name, frame, jpeg_quality=100)  # same names; no extra JPEG loss
    entry = {"id": job.clip_id, "out_dir": str(job.seq.out_dir), "frames": list(names), "params": params.to_dict()}
    atomic_write_text(_marker(out, job.clip_id), json.dumps(entry))
    if preview:
        mid = len(frames) // 2
        entry = dict(entry, preview=(frames[mid], lq[mid]))
    return entry


def _run_job_star(args) -> dict:
    return run_job(*args)


def _link(src: Path, dst: Path, copy: bool) -> None:
    if dst.exists() or dst.is_symlink():
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    if copy:
        tmp = dst.with_name(f".{dst.name}.partcopy.{os.getpid()}")
        if src.is_dir():
            shutil.copytree(src, tmp, symlinks=True)
        else:
            shutil.copy2(src, tmp)
        os.replace(tmp, dst)
    else:
        with contextlib.suppress(FileExistsError):  # another shard made the same link meanwhile
            os.symlink(src.resolve(), dst)


def check_output_location(root: Path, out: Path) -> None:
    r, o = root.resolve(), out.resolve()
    if o == r or r in o.parents:
        raise ValueError(f"output folder {out} is inside the input {root}; choose a folder outside it")
    if o in r.parents:
        raise ValueError(f"input {root} is inside the output folder {out}; choose another output folder")


def _check_request(kind: str, root: Path, out: Path, max_clip_frames: int, write_clean: bool) -> None:
    """One-line errors for a degrade request that cannot run, before any work."""
    if not root.exists():
        raise FileNotFoundError(f"input not found: {root}")
    check_output_location(root, out)
    if max_clip_frames < 2:
        raise ValueError(f"max_clip_frames must be >= 2, got {max_clip_frames}")
    check_output_dir(out)
    if write_clean and kind not in ("frames", "video"):
        raise ValueError(
            f"--write-clean applies to `frames` and `video` inputs (a {kind} dataset has its own clean tree)"
        )


def degrade_tree(
    kind: str,
    root: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    preset: str | DegradationConfig = "realbasicvsr",
    seed: int = 0,
    workers: int = 1,
    max_clip_frames: int = 64,
    copy_gt: bool = False,
    preview: bool = False,
    progress: bool = True,
    frame_range: tuple[int, int | None, int] | None = None,
    shard: Shard = WHOLE,
    write_clean: bool = False,
) -> dict:
    """Degrade a dataset into a mirror at ``out``; returns the manifest (also written to ``out/manifest.json`` once
    every clip is done; until then the returned dict has ``"pending"``, the clips other shards still owe).

    ``frame_range = (start, end, stride)`` selects frames of a ``frames`` or ``video`` input; ``shard``: the clips of
    one shard (module docstring)."""
    from tqdm import tqdm

    root, out = Path(root), Path(out)
    config = get_preset(preset) if isinstance(preset, str) else preset
    _check_request(kind, root, out, max_clip_frames, write_clean)
    plan = plan_mirror(kind, root)
    run_info = {
        "kind": kind,
        "preset": config.name,
        "config": dataclasses.asdict(config),
        "seed": seed,
        "max_clip_frames": max_clip_frames,
    }
    if frame_range is not None and tuple(frame_range) != (0, None, 1):
        if kind not in ("frames", "video"):
            raise ValueError(f"--start/--end/--stride apply to one video or frame folder, not to a {kind} dataset")
        plan = MirrorPlan([select_frames(seq, *frame_range) for seq in plan.sequences], plan.links)
        run_info["frame_range"] = list(frame_range)
    run_info = claim_run(out / STATE_DIR / "run.json", run_info, what="a degraded mirror", indent=1)
    for src, rel in plan.links:
        _link(src, out / rel, copy_gt)
    jobs = [j for s in plan.sequences for j in split_jobs(s, max_clip_frames)]
    todo = [j for j in shard.select(jobs) if not _marker(out, j.clip_id).is_file()]
    bar = tqdm(total=sum(j.count for j in todo), unit="frame", desc=f"degrade {kind}", disable=not progress)
    args = [(j, out, config, seed, preview) for j in todo]
    rows = []
    with contextlib.ExitStack() as stack:
        if workers > 1 and todo:
            # spawn, not fork: forking a process whose OpenCV / OpenMP thread pools are live can deadlock the children
            pool = stack.enter_context(mp.get_context("spawn").Pool(workers, initializer=init_worker))
            if len(todo) >= workers:  # enough clips: one clip per worker at a time
                results = pool.imap_unordered(_run_job_star, args)
            else:  # fewer clips than workers (one long folder or video): the frames of each clip in parallel
                results = (run_job(*a, pool=pool) for a in args)
        else:
            results = map(_run_job_star, args)
        for entry in results:
            bar.update(len(entry["frames"]))
            if "preview" in entry:
                rows.append(entry)
    bar.close()
    if preview and rows:  # beside the state, never among the frames (a frame folder is read as frames)
        write_preview(out / PREVIEW, sorted(rows, key=lambda e: natural_key(e["id"]))[:8])
    if write_clean:
        _write_clean(shard.select(jobs), out)
    finished = [j for j in jobs if _marker(out, j.clip_id).is_file()]
    if len(finished) < len(jobs):  # other shards' clips: no manifest yet
        done = [json.loads(_marker(out, j.clip_id).read_text()) for j in finished]
        return {"daflow": daflow.__version__, **run_info, "clips": done, "pending": len(jobs) - len(finished)}
    entries = [json.loads(_marker(out, j.clip_id).read_text()) for j in jobs]
    manifest = {"daflow": daflow.__version__, **run_info, "root": str(root.resolve()), "clips": entries}
    manifest["threads"] = cv2.getNumThreads()
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=1))
    return manifest


CLEAN_DIR = "clean"  # --write-clean: the clean frames of the degraded range, same names, below OUT/clean/


def _write_clean(jobs: list[ClipJob], out: Path) -> None:
    """The clean frames of every job (the same range and names as its degraded frames) below ``out/clean/``, so that
    ``daflow evaluate --data video:OUT?clean=OUT/clean`` scores a range of a video; existing files are kept."""
    for job in jobs:
        names = job.seq.out_names[job.start : job.start + job.count]
        paths = [out / CLEAN_DIR / job.seq.out_dir / name for name in names]
        if all(p.is_file() for p in paths):
            continue
        for path, frame in zip(paths, read_job_frames(job)):
            write_image(path, frame, jpeg_quality=100)


def write_preview(path: Path, entries: list[dict]) -> None:
    """Contact sheet: one row per clip, HQ | LQ | 4×|HQ − LQ| of its middle frame."""
    from daflow.flow.viz import write_panel

    tiles = []
    for e in entries:
        hq, lq = e["preview"]
        diff = np.clip(np.abs(hq.astype(np.int16) - lq.astype(np.int16)) * 4, 0, 255).astype(np.uint8)
        name = e["id"][-40:]
        tiles += [(f"HQ {name}", hq), ("LQ", lq), ("4x |HQ - LQ|", diff)]
    write_panel(path, tiles, ncols=3, height=min(240, entries[0]["preview"][0].shape[0]))


def load_manifest(path: str | os.PathLike[str]) -> tuple[dict, dict[str, DegradationParams]]:
    """Read a ``manifest.json``; returns it and the params of each clip id."""
    path = Path(path)
    if path.is_dir():
        path = path / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"manifest not found: {path}")
    manifest = read_json(path, what="degradation manifest")
    return manifest, {c["id"]: DegradationParams.from_dict(c["params"]) for c in manifest["clips"]}
