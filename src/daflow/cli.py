"""The ``daflow`` command. Thin: it parses arguments, calls the library and prints.

Every sub-command is registered by a ``_add_<name>`` function next to its ``_run_<name>`` handler.
Errors in user input (bad paths, malformed files, wrong sizes) are printed as one clear line and exit 1;
argument mistakes exit 2 (argparse).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

import daflow


def _parse_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be HxW (e.g. 256x256), got {text!r}") from None
    if h < 16 or w < 16:
        raise argparse.ArgumentTypeError(f"size must be at least 16x16, got {text!r}")
    return h, w


# ------------------------------------------------------------------------------------------------ viz


def _add_viz(sub) -> None:
    p = sub.add_parser("viz", help="colour-code a flow file (Middlebury colour wheel)", description=(
        "Write a PNG of a flow file (.flo, .flo5, KITTI .png, .npy, TartanAir *_flow.npy) with the Baker et al. "
        "colour wheel: hue = direction, saturation = magnitude. Invalid pixels are black."))
    p.add_argument("flow", type=Path, help="flow file")
    p.add_argument("-o", "--output", type=Path, required=True, help="output image (.png or .jpg)")
    p.add_argument("--max-flow", type=float, default=None, help="fixed normaliser in pixels (default: per image maximum)")
    p.set_defaults(func=_run_viz)


def _run_viz(args) -> int:
    from daflow.files import write_image
    from daflow.flow.io import read_flow
    from daflow.flow.viz import flow_to_color

    flow, valid = read_flow(args.flow)
    write_image(args.output, flow_to_color(flow, max_flow=args.max_flow, valid=valid))
    mag = np.linalg.norm(flow[valid], axis=-1) if valid.any() else np.zeros(1)
    print(f"{args.flow}: {flow.shape[1]}x{flow.shape[0]}, {100 * valid.mean():.1f}% valid, "
          f"|flow| max {mag.max():.2f} px mean {mag.mean():.2f} px -> {args.output}")
    return 0


# ---------------------------------------------------------------------------------------------- synth


def _add_synth(sub) -> None:
    from daflow.data.synthetic import SYNTHETIC_PRESETS

    p = sub.add_parser("synth", help="write a synthetic clip with exact ground-truth flow", description=(
        "Render a layered synthetic clip (bundled photographs and procedural textures, smooth parametric motion) "
        "and write OUT/frames/frame_%%04d.png, OUT/flow/frame_%%04d.flo (exact forward flow k -> k+1), "
        "OUT/occlusions/frame_%%04d.png (255 = occluded in frame k+1) and OUT/synth.json."))
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    p.add_argument("--frames", type=int, default=3, help="number of frames (default 3)")
    p.add_argument("--size", type=_parse_size, default=(256, 256), help="HxW (default 256x256)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--preset", choices=sorted(SYNTHETIC_PRESETS), default="default", help="motion ranges (default: default)")
    p.set_defaults(func=_run_synth)


def _run_synth(args) -> int:
    import dataclasses

    from daflow.data.synthetic import SYNTHETIC_PRESETS, render_clip
    from daflow.files import atomic_write_text, write_image
    from daflow.flow.io import write_flow

    if args.frames < 2:
        raise ValueError(f"--frames must be at least 2, got {args.frames}")
    cfg = dataclasses.replace(SYNTHETIC_PRESETS[args.preset], height=args.size[0], width=args.size[1], num_frames=args.frames)
    clip = render_clip(cfg, args.seed)
    out = args.output
    for k, frame in enumerate(clip.frames):
        write_image(out / "frames" / f"frame_{k:04d}.png", frame)
    for k in range(len(clip.flow)):
        write_flow(out / "flow" / f"frame_{k:04d}.flo", clip.flow[k], clip.valid[k])
        write_image(out / "occlusions" / f"frame_{k:04d}.png", clip.occlusion[k].astype(np.uint8) * 255)
    meta = {"config": dataclasses.asdict(cfg), "seed": args.seed, "preset": args.preset, "daflow": daflow.__version__,
            "layers": clip.to_sample().meta["layers"]}
    atomic_write_text(out / "synth.json", json.dumps(meta, indent=2))
    mag = np.linalg.norm(clip.flow, axis=-1)
    print(f"wrote {args.frames} frames {args.size[1]}x{args.size[0]} to {out}: |flow| max {mag.max():.1f} px, "
          f"{100 * clip.occlusion.mean():.1f}% occluded")
    return 0


# -------------------------------------------------------------------------------------------- degrade


def _add_degrade(sub) -> None:
    from daflow.data.degrade.config import DEGRADATION_PRESETS
    from daflow.data.degrade.mirror import KINDS

    p = sub.add_parser("degrade", help="build a degraded (LQ) mirror of a dataset, a video or a frame folder", description=(
        "Synthesise LQ frames with the RealBasicVSR pipeline (Real-ESRGAN second-order degradation per frame, "
        "whole-clip video compression) and write a mirror of the input layout: same file names and sizes, ground "
        "truth symlinked (or copied), manifest.json with every sampled parameter per clip. Resumable: finished "
        "clips are skipped; frames are written atomically. KIND: frames (one folder = one clip), video (one file; "
        "frames written as OUT/frame_%%06d.png), sintel, spring, tartanair, youhq."))
    p.add_argument("kind", choices=KINDS, help="input layout")
    p.add_argument("root", type=Path, help="input dataset root, frame folder or video file")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder (must not be inside the input)")
    p.add_argument("--preset", choices=sorted(DEGRADATION_PRESETS), default="realbasicvsr", help="degradation preset (default realbasicvsr, the paper's)")
    p.add_argument("--seed", type=int, default=0, help="run seed; each clip's seed derives from it and the clip's path (default 0)")
    p.add_argument("--workers", type=int, default=1, help="parallel worker processes (default 1)")
    p.add_argument("--max-clip-frames", type=int, default=64, help="longer sequences are split into balanced chunks (default 64)")
    p.add_argument("--copy-gt", action="store_true", help="copy ground truth instead of symlinking it")
    p.add_argument("--preview", action="store_true", help="write OUT/preview.png: HQ | LQ | difference of up to 8 clips")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_degrade)


def _run_degrade(args) -> int:
    from daflow.data.degrade.mirror import degrade_tree

    if args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    t0 = time.perf_counter()
    manifest = degrade_tree(args.kind, args.root, args.output, preset=args.preset, seed=args.seed, workers=args.workers,
                            max_clip_frames=args.max_clip_frames, copy_gt=args.copy_gt, preview=args.preview,
                            progress=not args.quiet)
    n = sum(len(c["frames"]) for c in manifest["clips"])
    print(f"{len(manifest['clips'])} clips, {n} frames ({args.preset}, seed {args.seed}) in {args.output} "
          f"[{time.perf_counter() - t0:.1f} s]; parameters in {args.output / 'manifest.json'}")
    return 0


# ----------------------------------------------------------------------------------------------- demo


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="run the bundled demonstration end to end", description=(
        "Synthesise a clip with exact ground truth, estimate its flow, print EPE and outlier rates against the "
        "exact ground truth, and write one picture. Until the bundled DA-Flow-tiny model exists this runs the "
        "classical references (OpenCV DIS and Farneback) through the same data, metrics and visualisation path."))
    p.add_argument("-o", "--output", type=Path, default=Path("demo_out"), help="output folder (default demo_out)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the synthetic clip (default 0)")
    p.add_argument("--size", type=_parse_size, default=(256, 256), help="HxW (default 256x256)")
    p.set_defaults(func=_run_demo)


def _run_demo(args) -> int:
    import dataclasses

    from daflow.data.degrade import degrade_clip, sample_params
    from daflow.data.synthetic import SYNTHETIC_PRESETS, render_clip
    from daflow.files import atomic_write_text
    from daflow.flow.metrics import flow_metrics
    from daflow.flow.viz import flow_panel_tiles, write_panel
    from daflow.models.classical import classical_flow

    print("daflow demo: the DA-Flow-tiny model is not bundled yet; showing the classical references "
          "(OpenCV DIS, Farneback) on a clean and a degraded (realbasicvsr) synthetic clip with exact ground truth.")
    t0 = time.perf_counter()
    cfg = dataclasses.replace(SYNTHETIC_PRESETS["default"], height=args.size[0], width=args.size[1], num_frames=3)
    clip = render_clip(cfg, args.seed)
    lq = degrade_clip(clip.frames, sample_params("realbasicvsr", 3, args.size, args.seed))
    gt = clip.flow[0]
    results, flows = {}, {}
    for method in ("dis", "farneback"):
        results[f"{method} (HQ)"] = flow_metrics(classical_flow(clip.frames[0], clip.frames[1], method), gt)
        flows[f"{method} (LQ)"] = classical_flow(lq[0], lq[1], method)
        results[f"{method} (LQ)"] = flow_metrics(flows[f"{method} (LQ)"], gt)
    results["zero flow"] = flow_metrics(np.zeros_like(gt), gt)
    print(_markdown_table(results))
    out = args.output
    tiles = [("HQ frame k", clip.frames[0])] + flow_panel_tiles(lq[0], lq[1], flows, gt=gt, frame_titles=("LQ frame k", "LQ frame k+1"))
    write_panel(out / "demo.png", tiles, ncols=4)
    atomic_write_text(out / "metrics.json", json.dumps({"seed": args.seed, "size": list(args.size), "metrics": results}, indent=2))
    print(f"wrote {out / 'demo.png'} and {out / 'metrics.json'} in {time.perf_counter() - t0:.1f} s")
    return 0


def _markdown_table(results: dict[str, dict[str, float]]) -> str:
    cols = ["epe", "1px", "3px", "5px"]
    lines = ["| model | EPE | 1px | 3px | 5px |", "|---|---|---|---|---|"]
    for name, m in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{m[c]:.3f}" if c == "epe" else f"{m[c]:.2f}" for c in cols) + " |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="daflow",
        description="DA-Flow: degradation-aware optical flow estimation with diffusion models (arXiv 2603.23499).",
    )
    parser.add_argument("--version", action="version", version=f"daflow {daflow.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in (_add_demo, _add_degrade, _add_synth, _add_viz):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, OSError) as err:
        print(f"daflow {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"daflow {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
