"""DA-Flow evaluated per denoising step (paper Table 2 and 3; Table 1 is the average over the steps).

Sequences are cut into 3-frame chunks that share their boundary frame (App. A.0.4: inference processes the video in
chunks of 3 frames), so every ground-truth pair is scored exactly once (:data:`daflow.data.base.CHUNKS`). For every
requested step the chunk's flows are scored with the usual metrics (EPE, 1/3/5 px); the *average* row is the mean of
the per-step metrics (what Table 1 reports); *mean-flow* scores the mean of the steps' flows (a step ensemble).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch
from tqdm import tqdm

from daflow.data.specs import EvalSet
from daflow.eval.benchmark import METRIC_COLUMNS
from daflow.flow.metrics import FlowMetrics
from daflow.shard import WHOLE, Shard


def evaluate_daflow(
    model,
    eval_set: EvalSet,
    *,
    steps: Sequence[int] | None = None,
    num_steps: int = 10,
    iters: int = 20,
    seed: int = 0,
    max_samples: int | None = None,
    reduce: str = "image",
    progress: bool = True,
    shard: Shard = WHOLE,
) -> dict:
    """Score ``model`` (:class:`~daflow.models.daflow.DAFlow`) on the chunks of ``eval_set`` (built with
    ``num_frames=3, stride=CHUNKS``; ``shard``: every N-th chunk only). Returns ``{"label", "per_step": {step:
    metrics}, "average", "mean_flow", "timesteps", "pairs", "seconds", "seconds_per_pair", "states"}`` (``states``:
    the per-image sums, for :func:`daflow.eval.benchmark.merge_records`)."""
    steps = list(range(num_steps)) if steps is None else sorted(set(int(s) for s in steps))
    per_step = {s: FlowMetrics(spring_min=eval_set.spring_min) for s in steps}
    ensemble = FlowMetrics(spring_min=eval_set.spring_min)
    n = len(eval_set.dataset) if max_samples is None else min(max_samples, len(eval_set.dataset))
    if n == 0:
        raise ValueError(f"{eval_set.label}: no 3-frame chunks (sequences need at least 3 frames)")
    seconds, pairs, timesteps = 0.0, 0, {}
    for i in tqdm(shard.positions(n), desc=eval_set.label, unit="chunk", disable=not progress, leave=False):
        sample = eval_set.dataset[i]
        if sample.flow is None:
            raise ValueError(f"{eval_set.label}: chunk {sample.meta} has no ground truth; evaluation needs it")
        first = int(sample.meta.get("first_pair", 0))
        frames = torch.from_numpy(np.ascontiguousarray(sample.frames)).permute(0, 3, 1, 2).float().unsqueeze(0)
        t0 = time.perf_counter()
        with torch.no_grad():
            out = model(frames, steps=steps, num_steps=num_steps, iters=iters, seed=seed)
        if model.device.type == "cuda":
            torch.cuda.synchronize()
        seconds += time.perf_counter() - t0
        gt = sample.flow[first:]
        valid = None if sample.valid is None else sample.valid[first:]
        for s, flow in out.flows.items():
            per_step[s].update(flow[0, first:].float().cpu(), gt, valid, key=i)
        ensemble.update(out.mean()[0, first:].float().cpu(), gt, valid, key=i)
        timesteps = out.timesteps
        pairs += len(gt)
    states = {"per_step": per_step, "mean_flow": ensemble}
    return stepwise_result(
        eval_set.label, eval_set.spec, states, reduce=reduce, timesteps=timesteps, pairs=pairs, seconds=seconds
    )


def stepwise_result(
    label: str, spec: str, states: dict, *, reduce: str, timesteps: dict, pairs: int, seconds: float
) -> dict:
    """The result dict of :func:`evaluate_daflow` from its accumulators ``{"per_step": {step: FlowMetrics},
    "mean_flow": FlowMetrics}`` (also what a merge of shards rebuilds)."""
    results = {s: m.compute(reduce=reduce) for s, m in states["per_step"].items()}
    average = {c: float(np.mean([r[c] for r in results.values()])) for c in METRIC_COLUMNS}
    return {
        "label": label,
        "spec": spec,
        "per_step": results,
        "average": average,
        "mean_flow": states["mean_flow"].compute(reduce=reduce),
        "timesteps": timesteps,
        "pairs": pairs,
        "seconds": seconds,
        "seconds_per_pair": seconds / max(pairs, 1),
        "states": {
            "per_step": {s: m.state() for s, m in states["per_step"].items()},
            "mean_flow": states["mean_flow"].state(),
        },
    }


def per_step_table(results: list[dict], *, method: str = "DA-Flow", first_column: str = "dataset") -> str:
    """Table 3's layout: a row per result (dataset, or model) × metric, columns steps 0..N−1, the average and the
    mean-flow ensemble."""
    steps = sorted({s for r in results for s in r["per_step"]})
    head = f"| {first_column} | metric | " + " | ".join(str(s) for s in steps) + " | average | mean-flow |"
    lines = [f"{method}, per denoising step", "", head, "|---|---|" + "---|" * (len(steps) + 2)]
    for r in results:
        for c in METRIC_COLUMNS:
            fmt = "{:.3f}" if c == "epe" else "{:.2f}"
            cells = [fmt.format(r["per_step"][s][c]) if s in r["per_step"] else "–" for s in steps]
            lines.append(
                f"| {r['label']} | {c.upper() if c == 'epe' else c} | "
                + " | ".join(cells)
                + f" | {fmt.format(r['average'][c])} | {fmt.format(r['mean_flow'][c])} |"
            )
    return "\n".join(lines)
