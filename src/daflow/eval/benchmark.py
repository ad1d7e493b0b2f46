"""Run a flow model over benchmark datasets and report the paper's metrics (paper §5.1, Table 1).

EPE and the percentage of pixels with an end-point error above 1, 3 and 5 px, averaged per image over valid
pixels and then over images (``reduce="pixel"`` pools all pixels instead). Tables are Markdown; the full
result (with the model, dataset spec, counts and timing) is JSON, with the per-image sums (``"state"``) from which
:func:`merge_records` rebuilds the metrics of one run out of the parts of a sharded one (``--shard K/N``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from daflow.data.base import FlowSample
from daflow.data.specs import EvalSet
from daflow.flow.metrics import FlowMetrics
from daflow.shard import WHOLE, Shard, parse_shard

METRIC_COLUMNS = ("epe", "1px", "3px", "5px")


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


def evaluate_pairs(
    estimate: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    eval_set: EvalSet,
    *,
    max_samples: int | None = None,
    reduce: str = "image",
    workers: int = 0,
    progress: bool = True,
    shard: Shard = WHOLE,
) -> dict:
    """Evaluate ``estimate`` (``[1, 3, H, W]`` ×2, RGB 0..255 → ``[1, 2, H, W]``) on every pair of ``eval_set``
    (``shard``: every N-th pair only).

    Returns ``{"label", "metrics": {epe, 1px, 3px, 5px}, "pairs", "skipped", "seconds", "seconds_per_pair",
    "state"}``.
    """
    metrics = FlowMetrics(spring_min=eval_set.spring_min)
    n = len(eval_set.dataset) if max_samples is None else min(max_samples, len(eval_set.dataset))
    if n == 0:
        raise ValueError(f"{eval_set.label}: the dataset is empty")
    model_time = 0.0
    indices = shard.positions(n)
    for index, sample in zip(
        indices,
        tqdm(
            _samples(eval_set.dataset, workers, indices),
            total=len(indices),
            desc=eval_set.label,
            unit="pair",
            disable=not progress,
            leave=False,
        ),
    ):
        if sample.flow is None:
            raise ValueError(f"{eval_set.label}: sample {sample.meta} has no ground truth; evaluation needs it")
        frames = torch.from_numpy(np.ascontiguousarray(sample.frames)).permute(0, 3, 1, 2).float()
        t = time.perf_counter()
        flow = estimate(frames[0:1], frames[1:2])
        model_time += time.perf_counter() - t
        valid = None if sample.valid is None else sample.valid[0:1]
        metrics.update(flow.detach().float().cpu().numpy().transpose(0, 2, 3, 1), sample.flow[0:1], valid, key=index)
    return {
        "label": eval_set.label,
        "spec": eval_set.spec,
        "metrics": metrics.compute(reduce=reduce),
        "pairs": metrics.count,
        "skipped": metrics.n_skipped,
        "seconds": model_time,
        "seconds_per_pair": model_time / max(len(indices), 1),
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


SHARD_FREE = ("shard", "results")  # record keys that may differ between the parts of one sharded evaluation


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
    labels = [x["label"] for x in first["results"] if "state" in x or "states" in x]
    reduce = first.get("reduce", "image")
    merged = []
    for label in labels:
        parts = [next(x for x in r["results"] if x["label"] == label) for r in records]
        seconds = sum(p["seconds"] for p in parts)
        if "state" in parts[0]:  # a flow model's record
            m = FlowMetrics.merge([p["state"] for p in parts])
            pairs = m.count + m.n_skipped
            merged.append(
                {
                    "label": label,
                    "spec": parts[0]["spec"],
                    "metrics": m.compute(reduce=reduce),
                    "pairs": m.count,
                    "skipped": m.n_skipped,
                    "seconds": seconds,
                    "seconds_per_pair": seconds / max(pairs, 1),
                    "state": m.state(),
                }
            )
        else:  # DA-Flow per step
            from daflow.eval.stepwise import stepwise_result

            states = {
                "per_step": {
                    s: FlowMetrics.merge([p["states"]["per_step"][s] for p in parts])
                    for s in parts[0]["states"]["per_step"]
                },
                "mean_flow": FlowMetrics.merge([p["states"]["mean_flow"] for p in parts]),
            }
            pairs = sum(p["pairs"] for p in parts)
            merged.append(
                stepwise_result(
                    label,
                    parts[0]["spec"],
                    states,
                    reduce=reduce,
                    timesteps=parts[0]["timesteps"],
                    pairs=pairs,
                    seconds=seconds,
                )
            )
    if "state" in first["results"][0]:
        merged = add_sintel_mean(merged)
    out = {k: v for k, v in first.items() if k not in SHARD_FREE}
    out["results"] = merged
    return out
