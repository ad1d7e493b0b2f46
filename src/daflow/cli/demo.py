"""daflow demo: the bundled models on a synthetic clip with real-size motion."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from daflow.cli.common import output_dir, parse_size


def _add_demo(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="run the bundled demonstration end to end",
        description=(
            "Synthesise a clip with exact ground truth and real-size motion (the large-motion scene preset: objects up to "
            "24 px a frame), degrade it (realbasicvsr), estimate the flow of its first pair with the bundled default "
            "(dis-raft, the DIS->RAFT refiner), DA-Flow-tiny and RAFT*-tiny, against OpenCV's DIS on the same degraded "
            "frames and zero flow; print their EPE and outlier rates against the exact ground truth, and write one picture "
            "(HQ, LQ, ground truth, estimates, error maps; error colours saturate at 10 px). "
            "Without bundled weights it shows the classical references only."
        ),
    )
    p.add_argument("-o", "--output", type=Path, default=Path("demo_out"), help="output folder (default demo_out)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the synthetic clip (default 0)")
    p.add_argument("--size", type=parse_size, default=(256, 256), help="HxW (default 256x256)")
    p.set_defaults(func=_run_demo)


def _run_demo(args) -> int:
    import dataclasses

    from daflow.api import load_model
    from daflow.data.degrade import degrade_clip, sample_params
    from daflow.data.synthetic import SYNTHETIC_PRESETS, render_clip
    from daflow.eval.benchmark import markdown_table
    from daflow.files import atomic_write_text
    from daflow.flow.metrics import flow_metrics
    from daflow.flow.viz import flow_panel_tiles, write_panel
    from daflow.models import bundled
    from daflow.models.classical import classical_flow

    output_dir(args.output)
    t0 = time.perf_counter()
    cfg = dataclasses.replace(SYNTHETIC_PRESETS["large-motion"], height=args.size[0], width=args.size[1], num_frames=3)
    clip = render_clip(cfg, args.seed)
    lq = degrade_clip(clip.frames, sample_params("realbasicvsr", 3, args.size, args.seed))
    gt = clip.flow[0]
    results, flows = {}, {}
    if (bundled.BUNDLE_DIR / bundled.REFINER).is_dir():
        flows["DIS->RAFT (default)"] = load_model("dis-raft")(lq[:2])[0]
    if (bundled.BUNDLE_DIR / bundled.DAFLOW_SMALL).is_dir():
        flows["DA-Flow-small"] = load_model("daflow-small")(lq[:2])[0]
    if bundled.available():
        print(f"daflow demo: {bundled.NOTICE}")
        flows["DA-Flow-tiny"] = load_model("daflow-tiny")(lq)[0]
        flows["RAFT*-tiny"] = load_model("raft-star-tiny")(lq[:2])[0]
    if not flows:
        print("daflow demo: no bundled models in this installation; showing the classical references only")
    flows["DIS"] = classical_flow(lq[0], lq[1], "dis")
    for name, f in flows.items():
        results[f"{name} (LQ)"] = flow_metrics(f, gt)
    results["zero flow"] = flow_metrics(np.zeros_like(gt), gt)
    results["DIS (HQ), clean reference"] = flow_metrics(classical_flow(clip.frames[0], clip.frames[1], "dis"), gt)
    print(markdown_table(results))
    out = args.output
    tiles = [("HQ frame k", clip.frames[0])] + flow_panel_tiles(
        lq[0], lq[1], flows, gt=gt, frame_titles=("LQ frame k", "LQ frame k+1")
    )
    write_panel(out / "demo.png", tiles, ncols=4)
    atomic_write_text(
        out / "metrics.json",
        json.dumps(
            {
                "seed": args.seed,
                "size": list(args.size),
                "metrics": results,
                "bundled": bundled.provenance() if bundled.available() else None,
                "default": bundled.provenance(bundled.BUNDLE_DIR / bundled.REFINER),
            },
            indent=2,
        ),
    )
    print(f"wrote {out / 'demo.png'} and {out / 'metrics.json'} in {time.perf_counter() - t0:.1f} s")
    return 0


def register(sub) -> None:
    """Add this module's command(s) to the ``daflow`` parser."""
    _add_demo(sub)
