"""Run a flow model over benchmark datasets and report the paper's metrics (paper §5.1, Table 1).

EPE and the percentage of pixels with an end-point error above 1, 3 and 5 px, averaged per image over valid
pixels and then over images (``reduce="pixel"`` pools all pixels instead). Tables are Markdown; the full
result (with the model, dataset spec, counts and timing) is JSON.
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

METRIC_COLUMNS = ("epe", "1px", "3px", "5px")


def _first(batch):
    return batch[0]


def _samples(dataset: Sequence[FlowSample], workers: int, limit: int):
    if workers <= 0:
        for i in range(limit):
            yield dataset[i]
        return
    indices = list(range(limit))
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
) -> dict:
    """Evaluate ``estimate`` (``[1, 3, H, W]`` ×2, RGB 0..255 → ``[1, 2, H, W]``) on every pair of ``eval_set``.

    Returns ``{"label", "metrics": {epe, 1px, 3px, 5px}, "pairs", "skipped", "seconds", "seconds_per_pair"}``.
    """
    metrics = FlowMetrics(spring_min=eval_set.spring_min)
    n = len(eval_set.dataset) if max_samples is None else min(max_samples, len(eval_set.dataset))
    if n == 0:
        raise ValueError(f"{eval_set.label}: the dataset is empty")
    model_time = 0.0
    for sample in tqdm(
        _samples(eval_set.dataset, workers, n),
        total=n,
        desc=eval_set.label,
        unit="pair",
        disable=not progress,
        leave=False,
    ):
        if sample.flow is None:
            raise ValueError(f"{eval_set.label}: sample {sample.meta} has no ground truth; evaluation needs it")
        frames = torch.from_numpy(np.ascontiguousarray(sample.frames)).permute(0, 3, 1, 2).float()
        t = time.perf_counter()
        flow = estimate(frames[0:1], frames[1:2])
        model_time += time.perf_counter() - t
        valid = None if sample.valid is None else sample.valid[0:1]
        metrics.update(flow.detach().float().cpu().numpy().transpose(0, 2, 3, 1), sample.flow[0:1], valid)
    return {
        "label": eval_set.label,
        "spec": eval_set.spec,
        "metrics": metrics.compute(reduce=reduce),
        "pairs": metrics.count,
        "skipped": metrics.n_skipped,
        "seconds": model_time,
        "seconds_per_pair": model_time / max(n, 1),
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
