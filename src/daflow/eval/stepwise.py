"""DA-Flow evaluated per denoising step (paper Table 2 and 3; Table 1 is the average over the steps).

Sequences are cut into 3-frame chunks that share their boundary frame (App. A.0.4: inference processes the video in
chunks of 3 frames), so every ground-truth pair is scored exactly once (:data:`daflow.data.base.CHUNKS`). For every
requested step the chunk's flows are scored with the usual metrics (EPE, 1/3/5 px); the *average* row is the mean of
the per-step metrics (what Table 1 reports); *mean-flow* scores the mean of the steps' flows (a step ensemble).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from daflow.flow.metrics import FlowMetrics

METRIC_COLUMNS = ("epe", "1px", "3px", "5px")


class DAFlowScorer:
    """The per-step half of :func:`daflow.eval.benchmark.evaluate_model` for DA-Flow (a
    :class:`daflow.api.FlowModel` whose ``module`` is a :class:`~daflow.models.daflow.DAFlow`): one denoising run a
    chunk, up to the last step wanted, scoring every requested step (default all) and their mean-flow ensemble,
    and handing back the model's own flows (its ``step``, or the mean of all steps) from the same run."""

    def __init__(self, model, steps: Sequence[int] | None, spring_min: bool = False):
        self.module, self.step, self.num_steps = model.module, model.step, model.num_steps
        self.iters, self.seed = model.iters, model.seed
        self.steps = list(range(self.num_steps)) if steps is None else sorted(set(int(s) for s in steps))
        if not self.steps or self.steps[0] < 0 or self.steps[-1] >= self.num_steps:
            raise ValueError(f"--step must lie in 0..{self.num_steps - 1}, got {list(steps or [])}")
        own = set(range(self.num_steps)) if self.step == "mean" else {self.step}
        self.wanted = sorted(set(self.steps) | own)
        self.per_step = {s: FlowMetrics(spring_min=spring_min) for s in self.steps}
        self.ensemble = FlowMetrics(spring_min=spring_min)
        self.timesteps: dict = {}
        self._out = None

    def run(self, frames: torch.Tensor) -> torch.Tensor:
        """The model's flows ``[F−1, 2, H, W]`` of one chunk ``frames`` ``[F, 3, H, W]`` (RGB 0..255)."""
        with torch.no_grad():
            out = self.module(
                frames[None], steps=self.wanted, num_steps=self.num_steps, iters=self.iters, seed=self.seed
            )
        if self.module.device.type == "cuda":
            torch.cuda.synchronize()
        self._out, self.timesteps = out, out.timesteps
        return out.mean()[0] if self.step == "mean" else out.flows[self.step][0]

    def update(self, gt, valid, first: int, *, key) -> None:
        """Score the last chunk's requested steps and their mean against ``gt`` (its pairs from ``first`` on)."""
        flows = {s: self._out.flows[s] for s in self.steps}
        for s, flow in flows.items():
            self.per_step[s].update(flow[0, first:].float().cpu(), gt, valid, key=key)
        ensemble = torch.stack(list(flows.values())).mean(0)
        self.ensemble.update(ensemble[0, first:].float().cpu(), gt, valid, key=key)

    def fields(self, reduce: str) -> dict:
        return stepwise_fields({"per_step": self.per_step, "mean_flow": self.ensemble}, reduce, self.timesteps)


def stepwise_fields(states: dict, reduce: str, timesteps: dict) -> dict:
    """The per-step fields of a DA-Flow result from its accumulators ``{"per_step": {step: FlowMetrics},
    "mean_flow": FlowMetrics}`` (also what a merge of shards rebuilds): ``per_step`` (metrics a step), ``average``
    (their mean: Table 1), ``mean_flow`` (the step ensemble), ``timesteps`` and ``states`` (the per-image sums)."""
    results = {s: m.compute(reduce=reduce) for s, m in states["per_step"].items()}
    return {
        "per_step": results,
        "average": {c: float(np.mean([r[c] for r in results.values()])) for c in METRIC_COLUMNS},
        "mean_flow": states["mean_flow"].compute(reduce=reduce),
        "timesteps": timesteps,
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
