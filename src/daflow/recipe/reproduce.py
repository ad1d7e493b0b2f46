"""The small-scale reproduction: every model of a tiny-recipe run on its held-out degraded set.

Writes the paper's tables in their layouts, at small scale, from a :mod:`daflow.recipe.run` run:

- Table 1 / 4: one row per model (EPE, 1px, 3px, 5px): RAFT (trained on clean frames), RAFT* (fine-tuned on LQ
  frames with pseudo ground truth), DA-Flow (pseudo ground truth, the paper's protocol; and exact ground truth),
  Baseline* (un-finetuned features), and OpenCV's DIS and Farnebäck; DA-Flow rows average the metrics over the
  denoising steps, as Table 1 does;
- Tables 2 / 3: DA-Flow and Baseline* per denoising step;
- the single-step / last-step / mean-of-steps trade-off (EPE against seconds per 3-frame chunk);
- the zero-shot layer × step analysis figures written by the recipe's ``analyze`` stage.

Iterations follow the paper: 12 for the RAFT baselines, 20 for DA-Flow.

The recipe's ``report`` stage calls :func:`write_report`; to re-run it on a finished run (another device, fewer
chunks): ``daflow train report RUN [--device cuda] [--max-chunks N]``. The tables in BENCHMARKS.md are
copied from ``RUN/report/report.md``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import torch

from daflow.data.base import CHUNKS
from daflow.data.specs import build_eval_sets
from daflow.eval.benchmark import evaluate_model, markdown_table
from daflow.eval.stepwise import per_step_table
from daflow.files import atomic_write_text
from daflow.recipe.layout import RunLayout

DAFLOW_RUNS = {"DA-Flow": "daflow", "DA-Flow (exact GT)": "daflow_gt", "Baseline*": "baseline"}


def _load_daflow(run: Path, stage: str, device: torch.device, iters: int):
    from daflow.api import load_model

    layout = RunLayout(run)
    info = json.loads(layout.flow_record(stage).read_text())["model"]
    return load_model(layout.flow_model(stage), dit4sr=info["transformer"], vae=layout.vae, device=device, iters=iters)


def _teacher_line(run: Path) -> list[str]:
    """One line naming the recipe's pseudo-GT teacher and its clean-frame validation EPE (if recorded)."""
    done = RunLayout(run).done("pseudo_gt")
    info = json.loads(done.read_text()) if done.is_file() else {}
    if "teacher" not in info:
        return []
    scores = ", ".join(f"{k} {v:.3f} px" for k, v in info.get("clean_val_epe", {}).items())
    return [
        "",
        f"Pseudo-GT teacher: `{info['teacher']}` on the clean frames (EPE on the clean validation frames: {scores}).",
    ]


def _run_kind(run: Path) -> list[str]:
    """Header lines saying which recipe preset made the run; a smoke run is labelled as meaningless."""
    from daflow.recipe.presets import RECIPE_PRESETS

    saved = RunLayout(run).recipe_json
    config = json.loads(saved.read_text()).get("config", {}) if saved.is_file() else {}
    for name, preset in RECIPE_PRESETS.items():
        if config == json.loads(json.dumps(dataclasses.asdict(preset))):
            if name == "smoke":
                return [
                    "",
                    "**Smoke run** (`daflow train recipe smoke`): every stage ran for a few steps to check the "
                    "pipeline end to end. The models are untrained and these numbers mean nothing.",
                ]
            return [
                "",
                f"Recipe preset `{name}`: "
                + ", ".join(f"{k} {v}" for k, v in config.items() if k.endswith("steps"))
                + ".",
            ]
    return ["", "Recipe settings: custom (see recipe.json)."] if config else []


def reproduce(
    run: str | Path,
    *,
    max_chunks: int | None = None,
    raft_iters: int = 12,
    daflow_iters: int = 20,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> tuple[str, dict]:
    """Evaluate the models of recipe ``run``; returns (Markdown report, results)."""
    from daflow.api import load_model

    run = Path(run)
    spec = f"labeled:{run / 'data' / 'eval' / 'lq'}?labels={run / 'data' / 'eval' / 'gt'}"
    (pairs,) = build_eval_sets(spec)
    (chunks,) = build_eval_sets(spec, num_frames=3, stride=CHUNKS)
    max_pairs = None if max_chunks is None else 2 * max_chunks
    rows, results = {}, {"spec": spec}
    for label, name, weights in (
        ("RAFT", "raft-small", RunLayout(run).raft_weights("raft")),
        ("RAFT*", "raft-small", RunLayout(run).raft_weights("raft_star")),
        ("DIS", "dis", None),
        ("Farneback", "farneback", None),
    ):
        model = load_model(name, weights=weights, iters=raft_iters, device=device)
        r = evaluate_model(model, pairs, max_samples=max_pairs, progress=progress)
        rows[label], results[label] = r["metrics"], r
    per_step = {}
    for label, stage in DAFLOW_RUNS.items():
        model = _load_daflow(run, stage, torch.device(device), daflow_iters)
        r = evaluate_model(model, chunks, max_samples=max_chunks, progress=progress)
        rows[label] = r["average"]
        per_step[label] = dict(r, label=label)
        results[label] = r
        if label == "DA-Flow":
            results["modes"] = _modes(model.module, chunks, r, daflow_iters, max_chunks)
    zero = _zero_flow(pairs, max_pairs)
    rows["zero flow"] = zero
    md = [
        "# Small-scale reproduction (tiny recipe)",
        *_run_kind(run),
        "",
        f"Held-out set: `{spec}` ({results['RAFT']['pairs']} pairs).",
        *_teacher_line(run),
        "",
        "## Table 1 layout (DA-Flow rows: average over the 10 denoising steps)",
        "",
        markdown_table(rows),
        "",
        "## Tables 2 and 3 layout: per denoising step",
        "",
        per_step_table(
            [per_step["DA-Flow"], per_step["Baseline*"], per_step["DA-Flow (exact GT)"]],
            method="EPE / outliers",
            first_column="model",
        ),
        "",
        "## Single step, last step, mean of steps (DA-Flow)",
        "",
        "| mode | EPE | 1px | s per chunk |",
        "|---|---|---|---|",
    ]
    for mode, m in results["modes"].items():
        md.append(f"| {mode} | {m['epe']:.3f} | {m['1px']:.2f} | {m['seconds']:.3f} |")
    md += [
        "",
        "Zero-shot analysis figures: `analyze/lifting/top_layers.png`, `top4_steps.png`, `all_layers.png` "
        "(Baseline vs Lifting, Fig. 3 and 7).",
    ]
    results["zero flow"] = zero
    return "\n".join(md), results


def _modes(model, chunks, full: dict, iters: int, max_chunks: int | None) -> dict:
    """EPE and time per chunk of the single-step, last-step and mean-of-steps modes (the per-step run gives the EPE;
    the time is measured on the first chunk)."""
    sample = chunks.dataset[0]
    frames = torch.from_numpy(sample.frames).permute(0, 3, 1, 2).float().unsqueeze(0)
    out = {}
    for mode, steps, metrics in (
        ("single-step (step 0)", [0], full["per_step"][0]),
        ("step 9 of 10", [9], full["per_step"][9]),
        ("mean of 10 steps", None, full["mean_flow"]),
    ):
        t0 = time.perf_counter()
        with torch.no_grad():
            model(frames, steps=steps, iters=iters)
        out[mode] = {**metrics, "seconds": time.perf_counter() - t0}
    return out


def _zero_flow(pairs, max_pairs: int | None) -> dict:
    from daflow.flow.metrics import FlowMetrics

    m = FlowMetrics()
    n = len(pairs.dataset) if max_pairs is None else min(max_pairs, len(pairs.dataset))
    for i in range(n):
        s = pairs.dataset[i]
        m.update(s.flow[:1] * 0, s.flow[:1], None if s.valid is None else s.valid[:1])
    return m.compute()


def write_report(run: str | Path, **kwargs) -> Path:
    """``RUN/report/report.md`` and ``results.json``."""
    md, results = reproduce(run, **kwargs)
    out = Path(run) / "report"
    atomic_write_text(out / "report.md", md + "\n")
    atomic_write_text(out / "results.json", json.dumps(results, indent=2, default=str))
    return out / "report.md"


def check_finished(run: str | Path) -> None:
    """Refuse a run whose models are not all trained yet (the report evaluates them all)."""
    missing = [s for s in ("raft", "raft_star", *DAFLOW_RUNS.values()) if not RunLayout(Path(run)).is_done(s)]
    if missing:
        raise ValueError(f"{run}: stages {', '.join(missing)} are not finished; run `daflow train recipe` first")
