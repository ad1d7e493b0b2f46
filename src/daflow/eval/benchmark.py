"""Run a flow model over benchmark datasets and report the paper's metrics (paper §5.1, Table 1).

EPE and the percentage of pixels with an end-point error above 1, 3 and 5 px, averaged per image over valid
pixels and then over images (``reduce="pixel"`` pools all pixels instead). Tables are Markdown; the full
result (with the model, dataset spec, counts and timing) is JSON, with the per-image sums (``"state"``) from which
:func:`merge_records` rebuilds the metrics of one run out of the parts of a sharded one (``--shard K/N``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch
from tqdm import tqdm

from daflow.data.base import FlowSample
from daflow.data.specs import EvalSet
from daflow.eval.stepwise import METRIC_COLUMNS, DAFlowScorer, stepwise_fields
from daflow.flow.metrics import FlowMetrics
from daflow.shard import WHOLE, Shard, parse_shard


def _first(batch):
    return batch[0]


def _samples(dataset: Sequence[FlowSample], workers: int, indices: Sequence[int]):
    if workers <= 0:
        for i in indices:
            yield dataset[i]
        return
    indices = list(indices)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(dataset, indices),
        batch_size=1,
        num_workers=workers,
        collate_fn=_first,
        multiprocessing_context="spawn",
    )
    yield from loader


def eval_sets_for(spec, chunk: int = 2) -> list[EvalSet]:
    """The datasets of ``spec`` cut for a model that takes ``chunk`` frames a call: consecutive pairs, or chunks that
    share their boundary frame so that every ground-truth pair is scored once (DA-Flow's 3-frame chunks)."""
    from daflow.data.base import CHUNKS
    from daflow.data.specs import build_eval_sets

    return build_eval_sets(spec) if chunk == 2 else build_eval_sets(spec, num_frames=chunk, stride=CHUNKS)


def evaluate_model(
    model,
    eval_set: EvalSet,
    *,
    steps: Sequence[int] | None = None,
    max_samples: int | None = None,
    reduce: str = "image",
    workers: int = 0,
    progress: bool = True,
    shard: Shard = WHOLE,
) -> dict:
    """Score ``model`` on every sample of ``eval_set`` (built by :func:`eval_sets_for` with the model's chunk;
    ``shard``: every N-th sample only). ``model``: a :class:`daflow.api.FlowModel`, or a pair function (``[1, 3, H,
    W]`` ×2, RGB 0..255 → ``[1, 2, H, W]``).

    Returns one shape for every model: ``{"label", "spec", "metrics": {epe, 1px, 3px, 5px}, "pairs", "skipped",
    "seconds", "seconds_per_pair", "state"}`` — ``metrics`` the model's own flows (DA-Flow: its ``step``) — and, for
    DA-Flow, the scores of the denoising ``steps`` (default all) as :func:`daflow.eval.stepwise.stepwise_fields`
    describes them (``per_step``, ``average``, ``mean_flow``, ``timesteps``, ``states``).
    """
    metrics = FlowMetrics(spring_min=eval_set.spring_min)
    stepwise = DAFlowScorer(model, steps, eval_set.spring_min) if getattr(model, "num_steps", None) else None
    pair = getattr(model, "pairs", None) or model
    n = len(eval_set.dataset) if max_samples is None else min(max_samples, len(eval_set.dataset))
    if n == 0:
        raise ValueError(f"{eval_set.label}: the dataset is empty (DA-Flow's chunks need sequences of 3 frames)")
    model_time = 0.0
    indices = shard.positions(n)
    samples = _samples(eval_set.dataset, workers, indices)
    bar = tqdm(samples, total=len(indices), desc=eval_set.label, unit="sample", disable=not progress, leave=False)
    for index, sample in zip(indices, bar):
        if sample.flow is None:
            raise ValueError(f"{eval_set.label}: sample {sample.meta} has no ground truth; evaluation needs it")
        first = int(sample.meta.get("first_pair", 0))
        frames = torch.from_numpy(np.ascontiguousarray(sample.frames)).permute(0, 3, 1, 2).float()
        t = time.perf_counter()
        flows = stepwise.run(frames) if stepwise else pair(frames[0:1], frames[1:2])
        model_time += time.perf_counter() - t
        gt = sample.flow[first:]
        valid = None if sample.valid is None else sample.valid[first:]
        if stepwise:
            stepwise.update(gt, valid, first, key=index)
        metrics.update(flows[first:].detach().float().cpu().numpy().transpose(0, 2, 3, 1), gt, valid, key=index)
    result = _result(eval_set.label, eval_set.spec, metrics, model_time, reduce)
    return {**result, **stepwise.fields(reduce)} if stepwise else result


def _result(label: str, spec: str, metrics: FlowMetrics, seconds: float, reduce: str) -> dict:
    """The fields of a result every model has (see :func:`evaluate_model`)."""
    return {
        "label": label,
        "spec": spec,
        "metrics": metrics.compute(reduce=reduce),
        "pairs": metrics.count,
        "skipped": metrics.n_skipped,
        "seconds": seconds,
        "seconds_per_pair": seconds / max(metrics.count + metrics.n_skipped, 1),
        "state": metrics.state(),
    }


def add_sintel_mean(results: list[dict]) -> list[dict]:
    """Append the mean of the Sintel clean and final rows when both are present (as the paper reports)."""
    by_label = {r["label"]: r for r in results}
    if {"sintel-clean", "sintel-final"} <= set(by_label):
        c, f = by_label["sintel-clean"]["metrics"], by_label["sintel-final"]["metrics"]
        mean = {k: (c[k] + f[k]) / 2 for k in METRIC_COLUMNS}
        results = results + [
            {
                "label": "sintel (mean of passes)",
                "spec": by_label["sintel-clean"]["spec"],
                "metrics": mean,
                "pairs": by_label["sintel-clean"]["pairs"] + by_label["sintel-final"]["pairs"],
            }
        ]
    return results


def markdown_table(rows: dict[str, dict[str, float]], first_column: str = "model") -> str:
    """``{row name: {epe, 1px, 3px, 5px}}`` → a Markdown table (EPE to 3 decimals, percentages to 2)."""
    lines = [f"| {first_column} | EPE | 1px | 3px | 5px |", "|---|---|---|---|---|"]
    for name, m in rows.items():
        lines.append(
            f"| {name} | " + " | ".join(f"{m[c]:.3f}" if c == "epe" else f"{m[c]:.2f}" for c in METRIC_COLUMNS) + " |"
        )
    return "\n".join(lines)


def paper_row(model: str, results: list[dict]) -> str:
    """The paper's Table 1 layout: one row, four columns per dataset in the order given."""
    head = "| model | " + " | ".join(f"{r['label']} {c}" for r in results for c in ("EPE", "1px", "3px", "5px")) + " |"
    sep = "|---|" + "---|" * (4 * len(results))
    row = (
        f"| {model} | "
        + " | ".join(
            f"{r['metrics'][c]:.3f}" if c == "epe" else f"{r['metrics'][c]:.2f}"
            for r in results
            for c in METRIC_COLUMNS
        )
        + " |"
    )
    return "\n".join([head, sep, row])


SHARD_FREE = ("shard", "results", "threads")  # record keys that may differ between the parts of one evaluation


def merge_records(records: Sequence[dict]) -> dict:
    """The record of one evaluation from the records of its shards (``daflow evaluate --shard K/N -o PART.json``):
    the same settings, shards 0..N−1 each once; metrics recomputed from the merged per-image sums (bit for bit what
    one run reports), seconds summed. Works for flow-model records and DA-Flow's per-step records."""
    if not records:
        raise ValueError("--merge: no parts given")
    shards = [r.get("shard") for r in records]
    if any(s is None for s in shards):
        raise ValueError("--merge: every part must come from a --shard K/N run")
    parsed = [parse_shard(s) for s in shards]
    counts = {s.count for s in parsed}
    if len(counts) != 1 or sorted(s.index for s in parsed) != list(range(counts.pop())):
        raise ValueError(f"--merge: expected shards 0..N-1 of one N, each once; got {sorted(shards)}")
    first = records[0]
    for r in records[1:]:
        diff = sorted(k for k in set(first) | set(r) if k not in SHARD_FREE and first.get(k) != r.get(k))
        if diff:
            raise ValueError(f"--merge: the parts differ in {', '.join(diff)}; they are not shards of one evaluation")
    labels = [x["label"] for x in first["results"] if "state" in x]
    reduce = first.get("reduce", "image")
    merged = []
    for label in labels:
        parts = [next(x for x in r["results"] if x["label"] == label) for r in records]
        seconds = sum(p["seconds"] for p in parts)
        result = _result(label, parts[0]["spec"], FlowMetrics.merge([p["state"] for p in parts]), seconds, reduce)
        if "states" in parts[0]:  # DA-Flow's denoising steps
            states = {
                "per_step": {
                    s: FlowMetrics.merge([p["states"]["per_step"][s] for p in parts])
                    for s in parts[0]["states"]["per_step"]
                },
                "mean_flow": FlowMetrics.merge([p["states"]["mean_flow"] for p in parts]),
            }
            result.update(stepwise_fields(states, reduce, parts[0]["timesteps"]))
        merged.append(result)
    merged = add_sintel_mean(merged)
    out = {k: v for k, v in first.items() if k not in SHARD_FREE}
    threads = sorted({r.get("threads") for r in records if r.get("threads") is not None})
    if threads:  # the parts' thread counts: one number when they agree
        out["threads"] = threads[0] if len(threads) == 1 else threads
    out["results"] = merged
    return out
