"""Reports of the zero-shot layer × step analysis: JSON, Markdown and the paper's figures (Fig. 3a/b, 7, 8).

- Fig. 3a / 8a (``top_layers.png``): the ten blocks with the lowest step-averaged EPE, ranked, per series;
- Fig. 3b / 8b (``top4_steps.png``): EPE over the denoising steps of each series' four best blocks;
- Fig. 7 (``all_layers.png``): step-averaged EPE of every block;
- ``heatmap_<series>.png``: the whole block × step table.

A *series* is one :class:`~daflow.eval.analysis.LayerStepTable` with a label (e.g. "Lifting Q/K (attn)");
earlier runs can be added (``daflow analyze --compare run/analysis.json``) to draw Baseline vs Lifting as the
paper does. Figures use matplotlib's object API (no pyplot state) and are written atomically.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from daflow.eval.analysis import LayerStepTable
from daflow.files import atomic_path, atomic_write_text

Series = tuple[str, LayerStepTable]


def _figure(width: float = 6.4, height: float = 4.0):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=120, layout="constrained")
    return fig, fig.add_subplot()


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip("."))
    return path


def plot_top_layers(series: list[Series], path: Path, *, top: int = 10) -> Path:
    """Fig. 3a: step-averaged EPE of the ``top`` best blocks of each series, by rank (block ids annotated)."""
    fig, ax = _figure()
    shown = max((min(top, len(t.ranking())) for _, t in series), default=0)
    for label, table in series:
        means = table.mean_epe()
        ranked = table.ranking()[:top]
        ranks = np.arange(1, len(ranked) + 1)
        ax.set_xticks(ranks)
        ax.plot(ranks, [means[b] for b in ranked], marker="o", label=label)
        for r, b in zip(ranks, ranked):
            ax.annotate(str(b), (r, means[b]), textcoords="offset points", xytext=(0, 5), ha="center", fontsize=7)
    ax.set_xlabel("layer rank (block id annotated)")
    ax.set_ylabel("EPE (averaged over steps)")
    ax.set_title(
        f"Zero-shot correspondence: top-{shown} layers"
        if shown < len(series[0][1].blocks)
        else f"Zero-shot correspondence: all {shown} layers, ranked"
    )
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_top_steps(series: list[Series], path: Path, *, top: int = 4) -> Path:
    """Fig. 3b: EPE over denoising steps of the ``top`` best blocks of each series."""
    fig, ax = _figure()
    styles = ["-", "--", ":", "-."]
    for si, (label, table) in enumerate(series):
        epe = dict(zip(table.blocks, table.epe()))
        for b in table.ranking()[:top]:
            ax.plot(
                range(len(table.timesteps)),
                epe[b],
                marker=".",
                linestyle=styles[si % len(styles)],
                label=f"{label} block {b}",
            )
    ax.set_xticks(range(max(len(t.timesteps) for _, t in series)))
    ax.set_xlabel("denoising step")
    ax.set_ylabel("EPE")
    shown = max(min(top, len(t.ranking())) for _, t in series)
    ax.set_title(f"EPE over denoising steps (top-{shown} layers)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_all_layers(series: list[Series], path: Path) -> Path:
    """Fig. 7: step-averaged EPE of every block, by block index."""
    fig, ax = _figure(8.0, 4.0)
    for label, table in series:
        means = table.mean_epe()
        ax.plot(list(means), list(means.values()), marker="o", label=label)
    ax.set_xticks(sorted({b for _, t in series for b in t.blocks}))
    ax.set_xlabel("block (0-based)")
    ax.set_ylabel("EPE (averaged over steps)")
    ax.set_title("Zero-shot correspondence of every layer")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_heatmap(label: str, table: LayerStepTable, path: Path) -> Path:
    """Block × step EPE as an image (lower is better)."""
    epe = table.epe()
    fig, ax = _figure(1.5 + 0.45 * epe.shape[1], 1.2 + 0.25 * epe.shape[0])
    im = ax.imshow(epe, aspect="auto", cmap="viridis_r")
    ax.set_yticks(range(len(table.blocks)), [str(b) for b in table.blocks], fontsize=7)
    ax.set_xticks(range(epe.shape[1]))
    ax.set_xlabel("denoising step")
    ax.set_ylabel("block")
    ax.set_title(f"{label}: EPE", fontsize=9)
    fig.colorbar(im, ax=ax)
    return _save(fig, path)


def _slug(text: str) -> str:
    import re

    return re.sub(r"_+", "_", "".join(c if c.isalnum() else "_" for c in text.lower())).strip("_")


def load_series(path: str | Path) -> list[Series]:
    """The series of an earlier run's ``analysis.json``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--compare: {path} not found (expected the analysis.json of a daflow analyze run)")
    try:
        data = json.loads(path.read_text())
        out = []
        for entry in data["tables"]:
            table = LayerStepTable(
                feature=entry["feature"],
                attention=entry["attention"],
                timesteps=entry["timesteps"],
                metrics={int(b): v for b, v in entry["metrics"].items()},
                pairs=entry["pairs"],
            )
            out.append((f"{data['label']} {table.name}", table))
        return out
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"--compare: {path} is not an analysis.json of daflow analyze ({exc})") from exc


def write_analysis(
    out: str | Path, label: str, tables: list[LayerStepTable], *, meta: dict, compare: list[Series] = ()
) -> list[Path]:
    """Write ``analysis.json``, ``analysis.md`` and the figures into ``out``; returns the written paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    series = [(f"{label} {t.name}", t) for t in tables] + list(compare)
    record = {"label": label, **meta, "tables": [t.to_dict() for t in tables]}
    written = [out / "analysis.json"]
    atomic_write_text(written[0], json.dumps(record, indent=2))
    md = [f"# Zero-shot correspondence: {label}", "", "```", json.dumps(meta, indent=2), "```", ""]
    for name, table in series:
        md += [f"## {name}", "", f"Best blocks (step-averaged EPE): {table.ranking()[:10]}", "", table.markdown(), ""]
    written.append(out / "analysis.md")
    atomic_write_text(written[1], "\n".join(md))
    written.append(plot_top_layers(series, out / "top_layers.png"))
    written.append(plot_top_steps(series, out / "top4_steps.png"))
    written.append(plot_all_layers(series, out / "all_layers.png"))
    for name, table in series[: len(tables)]:
        written.append(plot_heatmap(name, table, out / f"heatmap_{_slug(name)}.png"))
    return written
