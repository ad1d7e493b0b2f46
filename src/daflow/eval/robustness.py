"""Corruption × severity robustness of flow models (``daflow robustness``; ``docs/robustness.md``).

For every model, dataset, corruption (:mod:`daflow.data.corruptions`) and severity, each sample of the dataset is
corrupted (one draw per sample, the same at every severity, seeded by ``seed`` and the sample's index), the model's
flows on the corrupted frames are scored against the ground truth (EPE and 1/3/5 px outliers, per image then mean, as
``daflow evaluate``), and against the model's own flows on the clean frames: the **robustness score** is the mean
end-point distance between the two predictions (RobustSpring's idea: a robust model changes its answer little; it
needs no ground truth). The clean row has corruption ``clean``, severity 0.

Each row is written to ``OUT/rows/<model>/<dataset>/<corruption>_<severity>.json`` as soon as it is done, so a run
resumes where it stopped and ``--shard K/N`` runs (every N-th row from K) fill one folder; the run that finds every
row there writes ``robustness.json`` (tidy rows), ``robustness.md``, ``robustness.png`` and ``examples.png``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from daflow.data.corruptions import CORRUPTIONS, GROUPS, corrupt
from daflow.files import atomic_write_text
from daflow.flow.metrics import FlowMetrics
from daflow.shard import WHOLE, Shard

CLEAN = "clean"
COLUMNS = ("epe", "px1", "px3", "px5", "robustness")


@dataclass
class VideoSample:
    """A window of a ``video:`` spec (no ground truth): its input ``frames`` and the ``clean`` frames it is scored
    on (the input when the spec names none), ``[F, H, W, 3]`` uint8."""

    frames: np.ndarray
    clean: np.ndarray
    visible: np.ndarray  # [F-1, H, W] bool: the pixels each clean pair is scored on (video_quality.visible_mask)
    meta: dict = field(default_factory=dict)
    flow: None = None
    valid: None = None


@dataclass
class VideoSet:
    """A ``video:`` spec cut into windows of a model's chunk (sharing their boundary frame), like an EvalSet."""

    label: str
    dataset: list


def video_set(spec, chunk: int) -> VideoSet:
    """The :class:`VideoSet` of a parsed ``video:PATH[?clean=…&start=…]`` spec for a model taking ``chunk`` frames."""
    from daflow.data.base import CHUNKS, window_plan
    from daflow.eval.video_quality import video_pairs, visible_mask

    pairs = video_pairs(spec.target, **spec.options)
    n = len(pairs.source)
    frames = pairs.source.read(0, n)
    clean = pairs.clean.read(0, n) if pairs.clean is not None else frames
    visible = np.stack([visible_mask(clean[k], clean[k + 1]) for k in range(n - 1)])  # once, for every row
    windows = window_plan(n, min(chunk, n), CHUNKS)
    samples = [
        VideoSample(frames[s : s + chunk], clean[s : s + chunk], visible[s : s + chunk - 1], {"first_pair": first})
        for s, first in windows
    ]
    return VideoSet(f"video-{Path(spec.target).stem}", samples)


def _samples(eval_set, max_samples: int | None) -> list:
    n = len(eval_set.dataset) if max_samples is None else min(max_samples, len(eval_set.dataset))
    samples = [eval_set.dataset[i] for i in range(n)]
    if samples and isinstance(samples[0], VideoSample):
        return samples
    if not samples:
        raise ValueError(f"{eval_set.label}: the dataset is empty")
    if any(s.flow is None for s in samples):
        raise ValueError(f"{eval_set.label}: robustness needs ground-truth flow (video: specs have none)")
    return samples


def _predict(model, samples: list, corruption: str, severity: int, seed: int) -> tuple[list, float]:
    """The model's flows ``[F−1, H, W, 2]`` on every sample, corrupted (or clean), and the seconds they took."""
    flows, seconds = [], 0.0
    for i, s in enumerate(samples):
        frames = np.ascontiguousarray(s.frames)
        if corruption != CLEAN:
            frames = corrupt(frames, corruption, severity, seed + i)
        t = time.perf_counter()
        flows.append(model(frames))
        seconds += time.perf_counter() - t
    return flows, seconds


def score_row(samples: list, flows: list, clean: list) -> dict:
    """EPE and outliers against the ground truth (for a ``video:`` spec, without ground truth, the warping error of the
    flow on the clean frames over their visible pixels instead, as ``daflow evaluate`` scores video), and the
    robustness score against the clean predictions."""
    from daflow.eval.video_quality import photometric_error

    metrics, change, warp = FlowMetrics(), [], []
    for i, (s, f, c) in enumerate(zip(samples, flows, clean)):
        first = int(s.meta.get("first_pair", 0))
        change.append(float(np.linalg.norm(f[first:] - c[first:], axis=-1).mean()))
        if s.flow is not None:
            metrics.update(f[first:], s.flow[first:], None if s.valid is None else s.valid[first:], key=i)
            continue
        for k in range(first, len(f)):
            warp.append(photometric_error(s.clean[k], s.clean[k + 1], f[k], s.visible[k]))
    scores = {"robustness": float(np.mean(change))}
    if warp:
        return {"epe": None, "px1": None, "px3": None, "px5": None, "warp_error": float(np.nanmean(warp)), **scores}
    m = metrics.compute()
    return {"epe": m["epe"], "px1": m["1px"], "px3": m["3px"], "px5": m["5px"], **scores}


def row_jobs(models: dict, labels: list[str], corruptions: list[str], severities: list[int]) -> list[tuple]:
    """Every ``(model, dataset label, corruption, severity)`` row in a fixed order (shards select from it)."""
    rows = [(CLEAN, 0)] + [(c, s) for c in corruptions for s in severities]
    return [(m, d, c, s) for m in models for d in labels for c, s in rows]


def row_path(out: Path, model: str, data: str, corruption: str, severity: int) -> Path:
    return out / "rows" / model / data.replace("/", "_") / f"{corruption}_{severity}.json"


def run_robustness(
    models: dict,
    eval_sets: list,
    out: str | Path,
    *,
    corruptions: list[str],
    severities: list[int],
    seed: int = 0,
    max_samples: int | None = None,
    shard: Shard = WHOLE,
    progress: bool = True,
) -> dict | None:
    """Compute the rows of this shard that are not in ``out`` yet (module docstring); ``models``: ``{name:
    daflow.api.FlowModel}``; ``eval_sets``: ``{model name: [EvalSet]}`` cut for each model's chunk. Returns the
    assembled record once every row is there, else None."""
    from tqdm import tqdm

    out = Path(out)
    labels = [e.label for e in next(iter(eval_sets.values()))]
    jobs = row_jobs(models, labels, corruptions, severities)
    todo = [j for j in shard.select(jobs) if not row_path(out, *j).is_file()]
    cache: dict = {}
    for model_name, label, corruption, severity in tqdm(todo, desc="robustness", unit="row", disable=not progress):
        key = (model_name, label)
        if key not in cache:  # the samples and the clean predictions, once per model and dataset
            eval_set = next(e for e in eval_sets[model_name] if e.label == label)
            samples = _samples(eval_set, max_samples)
            clean, clean_seconds = _predict(models[model_name], samples, CLEAN, 0, seed)
            cache = {key: (samples, clean, clean_seconds)}
        samples, clean, clean_seconds = cache[key]
        if corruption == CLEAN:
            flows, seconds = clean, clean_seconds
        else:
            flows, seconds = _predict(models[model_name], samples, corruption, severity, seed)
        pairs = sum(len(f) - int(s.meta.get("first_pair", 0)) for s, f in zip(samples, flows))
        row = {
            "model": model_name,
            "data": label,
            "corruption": corruption,
            "group": CORRUPTIONS[corruption].group if corruption != CLEAN else CLEAN,
            "severity": severity,
            **score_row(samples, flows, clean),
            "pairs": pairs,
            "seconds": seconds / max(pairs, 1),
        }
        atomic_write_text(row_path(out, model_name, label, corruption, severity), json.dumps(row))
    if not all(row_path(out, *j).is_file() for j in jobs):
        return None
    rows = [json.loads(row_path(out, *j).read_text()) for j in jobs]
    return {"corruptions": corruptions, "severities": severities, "seed": seed, "rows": rows}


def _value(row: dict) -> float:
    """A row's error: EPE, or for a ``video:`` spec (no ground truth) the warping error."""
    return row["epe"] if row["epe"] is not None else row["warp_error"]


def _metric(row: dict) -> str:
    return "EPE" if row["epe"] is not None else "warping error"


def markdown(record: dict, reference: str | None = None) -> str:
    """Per model and dataset: EPE per corruption and severity with the mean over severities and the robustness
    score's mean; then the summary per model relative to ``reference`` (mean corrupted EPE / the reference's)."""
    rows, sev = record["rows"], record["severities"]
    lines = []
    for model in dict.fromkeys(r["model"] for r in rows):
        for data in dict.fromkeys(r["data"] for r in rows):
            mine = [r for r in rows if r["model"] == model and r["data"] == data]
            clean = next(r for r in mine if r["corruption"] == CLEAN)
            lines += [
                f"### {model} on {data} (clean: {_metric(clean)} {_value(clean):.3f}, {clean['pairs']} pairs)",
                "",
                "| corruption | group | "
                + " | ".join(f"{_metric(clean)} s{s}" for s in sev)
                + f" | mean {_metric(clean)} | mean robustness |",
                "|---|---|" + "---|" * (len(sev) + 2),
            ]
            for c in record["corruptions"]:
                cells = [next(r for r in mine if r["corruption"] == c and r["severity"] == s) for s in sev]
                lines.append(
                    f"| {c} | {CORRUPTIONS[c].group} | "
                    + " | ".join(f"{_value(r):.2f}" for r in cells)
                    + f" | {np.mean([_value(r) for r in cells]):.2f} | {np.mean([r['robustness'] for r in cells]):.2f} |"
                )
            lines.append("")
    lines += _summary(record, reference)
    return "\n".join(lines)


def _summary(record: dict, reference: str | None) -> list[str]:
    rows = record["rows"]
    models = list(dict.fromkeys(r["model"] for r in rows))
    reference = reference or models[0]

    def mean_epe(model: str, group: str | None = None) -> float:
        return float(
            np.mean(
                [_value(r) for r in rows if r["model"] == model and r["corruption"] != CLEAN]
                if group is None
                else [_value(r) for r in rows if r["model"] == model and r["group"] == group]
            )
        )

    groups = [g for g in GROUPS if any(r["group"] == g for r in rows)]
    lines = [
        f"### Summary: mean EPE over every corruption and severity, relative to {reference}",
        "",
        "| model | clean EPE | corrupted EPE | / " + reference + " | " + " | ".join(groups) + " | robustness |",
        "|---|---|---|---|" + "---|" * (len(groups) + 1),
    ]
    for m in models:
        clean = np.mean([_value(r) for r in rows if r["model"] == m and r["corruption"] == CLEAN])
        robust = np.mean([r["robustness"] for r in rows if r["model"] == m and r["corruption"] != CLEAN])
        lines.append(
            f"| {m} | {clean:.3f} | {mean_epe(m):.3f} | {mean_epe(m) / mean_epe(reference):.2f} | "
            + " | ".join(f"{mean_epe(m, g):.2f}" for g in groups)
            + f" | {robust:.2f} |"
        )
    return lines


def plot(record: dict, path: str | Path) -> None:
    """EPE against severity: one panel per corruption group (mean over its corruptions), one line per model and
    dataset; the clean EPE at severity 0."""
    from matplotlib.figure import Figure

    rows, sev = record["rows"], [0, *record["severities"]]
    groups = [g for g in GROUPS if any(r["group"] == g for r in rows)]
    fig = Figure(figsize=(3.2 * len(groups), 3.0), dpi=110)
    axes = fig.subplots(1, len(groups), squeeze=False)[0]
    for ax, group in zip(axes, groups):
        for model in dict.fromkeys(r["model"] for r in rows):
            for data in dict.fromkeys(r["data"] for r in rows):
                mine = [r for r in rows if r["model"] == model and r["data"] == data]
                clean = next(_value(r) for r in mine if r["corruption"] == CLEAN)
                ys = [clean] + [
                    np.mean([_value(r) for r in mine if r["group"] == group and r["severity"] == s]) for s in sev[1:]
                ]
                ax.plot(sev, ys, marker="o", label=f"{model} ({data})")
        ax.set_title(group)
        ax.set_xlabel("severity")
        ax.set_xticks(sev)
    axes[0].set_ylabel("EPE (px)")
    axes[-1].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(str(path))


def examples(frame_clip: np.ndarray, corruptions: list[str], path: str | Path, seed: int = 0) -> None:
    """One frame of ``frame_clip`` ``[F, H, W, 3]`` per corruption at severities 3 and 5, beside the clean frame."""
    from daflow.flow.viz import write_panel

    tiles = [("clean", frame_clip[0])]
    for c in corruptions:
        tiles += [(f"{c} 3", corrupt(frame_clip, c, 3, seed)[0]), (f"{c} 5", corrupt(frame_clip, c, 5, seed)[0])]
    write_panel(path, tiles, ncols=8, height=min(160, frame_clip.shape[1]))
