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

DAFLOW_NAMES = ("daflow", "daflow-tiny")  # --model values served by DA-Flow (daflow-tiny: the bundled model)


def _device(name: str) -> str:
    """``--device``: ``auto`` is cuda when available, else cpu; anything else as given, if torch knows it."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"--device {name!r} is not a torch device (cpu, cuda, cuda:1, ...): {err}") from None
    return name


def _output_dir(path: Path) -> Path:
    """``-o``: :func:`daflow.files.check_output_dir`, imported here so that ``daflow --help`` does not load OpenCV."""
    from daflow.files import check_output_dir

    return check_output_dir(path)


def _default_threads() -> int:
    """``OMP_NUM_THREADS`` when set; else the CPUs this process may use minus those other processes keep busy
    (the 1-minute load average), at least 1: torch's default of every core is 7-30x slower on a loaded machine."""
    import os

    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise ValueError(f"OMP_NUM_THREADS must be a positive integer, got {env!r}") from None
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        busy = int(round(os.getloadavg()[0]))
    except OSError:
        busy = 0
    return max(1, min(cpus, cpus - busy))


def _apply_threads(threads: int | None) -> int:
    """Set torch's and OpenCV's thread counts (``--threads``; default :func:`_default_threads`)."""
    n = _default_threads() if threads is None else threads
    if n < 1:
        raise ValueError(f"--threads must be >= 1, got {n}")
    import cv2
    import torch

    torch.set_num_threads(n)
    cv2.setNumThreads(n)
    return n


def _add_threads(parser: argparse.ArgumentParser) -> None:
    """``--threads`` on a command and, recursively, on its sub-commands."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]  # noqa: SLF001
    if not subs:
        parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch and OpenCV (default: "
                            "OMP_NUM_THREADS if set, else the CPUs not kept busy by other processes)")
    for action in subs:
        for child in action.choices.values():
            _add_threads(child)


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
        "and write OUT/frames/frame_0000.png, OUT/flow/frame_0000.flo, ... (exact forward flow k -> k+1), "
        "OUT/occlusions/frame_0000.png, ... (255 = occluded in frame k+1) and OUT/synth.json."))
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
    out = _output_dir(args.output)
    clip = render_clip(cfg, args.seed)
    for k, frame in enumerate(clip.frames):
        write_image(out / "frames" / f"frame_{k:04d}.png", frame)
    for k in range(len(clip.flow)):
        write_flow(out / "flow" / f"frame_{k:04d}.flo", clip.flow[k], clip.valid[k])
        write_image(out / "occlusions" / f"frame_{k:04d}.png", clip.occlusion[k].astype(np.uint8) * 255)
    meta = {"config": dataclasses.asdict(cfg), "seed": args.seed, "preset": args.preset, "daflow": daflow.__version__,
            "layers": clip.to_sample().meta["layers"]}
    atomic_write_text(out / "synth.json", json.dumps(meta, indent=2))
    mag = np.linalg.norm(clip.flow, axis=-1)
    print(f"wrote {args.frames} frames of HxW {args.size[0]}x{args.size[1]} to {out}: |flow| max {mag.max():.1f} px, "
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
        "frames written as OUT/frame_000000.png, ...), sintel, spring, tartanair, youhq. --start/--end/--stride pick "
        "frames of a video or frame folder."))
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
    _add_range_args(p)
    p.set_defaults(func=_run_degrade)


def _run_degrade(args) -> int:
    from daflow.data.degrade.mirror import degrade_tree

    if args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    t0 = time.perf_counter()
    manifest = degrade_tree(args.kind, args.root, args.output, preset=args.preset, seed=args.seed, workers=args.workers,
                            max_clip_frames=args.max_clip_frames, copy_gt=args.copy_gt, preview=args.preview,
                            progress=not args.quiet, frame_range=(args.start, args.end, args.stride))
    n = sum(len(c["frames"]) for c in manifest["clips"])
    print(f"{len(manifest['clips'])} clips, {n} frames ({args.preset}, seed {args.seed}) in {args.output} "
          f"[{time.perf_counter() - t0:.1f} s]; parameters in {args.output / 'manifest.json'}")
    return 0


# ----------------------------------------------------------------------------------------------- demo


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="run the bundled demonstration end to end", description=(
        "Synthesise a clip with exact ground truth and real-size motion (the large-motion scene preset: objects up to "
        "24 px a frame), degrade it (realbasicvsr), estimate the flow of its first pair with the bundled default "
        "(dis-raft, the DIS->RAFT refiner), DA-Flow-tiny and RAFT*-tiny, against OpenCV's DIS on the same degraded "
        "frames and zero flow; print their EPE and outlier rates against the exact ground truth, and write one picture "
        "(HQ, LQ, ground truth, estimates, error maps; error colours saturate at 10 px). "
        "Without bundled weights it shows the classical references only."))
    p.add_argument("-o", "--output", type=Path, default=Path("demo_out"), help="output folder (default demo_out)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the synthetic clip (default 0)")
    p.add_argument("--size", type=_parse_size, default=(256, 256), help="HxW (default 256x256)")
    p.set_defaults(func=_run_demo)


def _run_demo(args) -> int:
    import dataclasses

    import torch

    from daflow.data.degrade import degrade_clip, sample_params
    from daflow.data.synthetic import SYNTHETIC_PRESETS, render_clip
    from daflow.eval.benchmark import markdown_table
    from daflow.files import atomic_write_text
    from daflow.flow.metrics import flow_metrics
    from daflow.flow.viz import flow_panel_tiles, write_panel
    from daflow.models import bundled
    from daflow.models.classical import classical_flow

    _output_dir(args.output)
    t0 = time.perf_counter()
    cfg = dataclasses.replace(SYNTHETIC_PRESETS["large-motion"], height=args.size[0], width=args.size[1], num_frames=3)
    clip = render_clip(cfg, args.seed)
    lq = degrade_clip(clip.frames, sample_params("realbasicvsr", 3, args.size, args.seed))
    gt = clip.flow[0]
    results, flows = {}, {}
    frames = torch.from_numpy(lq).permute(0, 3, 1, 2).float().unsqueeze(0)
    if (bundled.BUNDLE_DIR / bundled.REFINER).is_dir():
        default = bundled.dis_raft()
        flows["DIS->RAFT (default)"] = default(frames[:, 0], frames[:, 1])[0].permute(1, 2, 0).numpy()
    if bundled.available():
        from daflow.inference import daflow_estimator

        print(f"daflow demo: {bundled.NOTICE}")
        model = bundled.load_daflow_tiny()
        flows["DA-Flow-tiny"] = daflow_estimator(model)(frames)[0, 0].permute(1, 2, 0).numpy()
        star = bundled.raft_star_tiny()
        flows["RAFT*-tiny"] = star(frames[:, 0], frames[:, 1])[0].permute(1, 2, 0).numpy()
    if not flows:
        print("daflow demo: no bundled models in this installation; showing the classical references only")
    flows["DIS"] = classical_flow(lq[0], lq[1], "dis")
    for name, f in flows.items():
        results[f"{name} (LQ)"] = flow_metrics(f, gt)
    results["zero flow"] = flow_metrics(np.zeros_like(gt), gt)
    results["DIS (HQ), clean reference"] = flow_metrics(classical_flow(clip.frames[0], clip.frames[1], "dis"), gt)
    print(markdown_table(results))
    out = args.output
    tiles = [("HQ frame k", clip.frames[0])] + flow_panel_tiles(lq[0], lq[1], flows, gt=gt, frame_titles=("LQ frame k", "LQ frame k+1"))
    write_panel(out / "demo.png", tiles, ncols=4)
    atomic_write_text(out / "metrics.json", json.dumps({"seed": args.seed, "size": list(args.size), "metrics": results,
                                                        "bundled": bundled.provenance() if bundled.available() else None,
                                                        "default": bundled.provenance(bundled.BUNDLE_DIR / bundled.REFINER)},
                                                       indent=2))
    print(f"wrote {out / 'demo.png'} and {out / 'metrics.json'} in {time.perf_counter() - t0:.1f} s")
    return 0


# ------------------------------------------------------------------------------------------- evaluate

def _add_model_args(p, *, default_iters_help: str) -> None:
    p.add_argument("--weights", type=Path, help="the published checkpoint of the model (never downloaded)")
    p.add_argument("--iters", type=int, help=default_iters_help)
    p.add_argument("--scale", type=int, choices=(0, -1), help="SEA-RAFT input resize exponent: -1 runs at half resolution "
                   "and scales the flow back (SEA-RAFT's Spring protocol); default: the preset's")
    p.add_argument("--device", default="auto", help="torch device (default auto: cuda if available, else cpu)")
    p.add_argument("--corr", default="auto", choices=("auto", "all-pairs", "windowed"),
                   help="correlation: all-pairs volume or on-the-fly windows (linear memory); auto picks by size")
    p.add_argument("--random-init", action="store_true", help="random weights instead of --weights: smoke tests only, "
                   "the flow is meaningless and every output says so")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _build_model(args, name: str):
    from daflow.models.registry import build_flow_model

    args.device = _device(args.device)
    if args.iters is not None and args.iters < 1:
        raise ValueError(f"--iters must be >= 1, got {args.iters}")
    if args.scale is not None and not name.startswith("sea-raft"):
        raise ValueError(f"--scale applies to SEA-RAFT only (its resize protocol); --model {name} does not take it")
    if args.corr != "auto" and name in ("dis", "farneback"):
        raise ValueError(f"--corr applies to RAFT-family models; --model {name} has no correlation volume")
    model = build_flow_model(name, args.weights, iters=args.iters, scale=args.scale, device=args.device,
                             corr_mode=args.corr, random_init=args.random_init)
    return model  # with --random-init the library has logged a warning and the description says so


def _add_evaluate(sub) -> None:
    from daflow.eval import datasets
    from daflow.models.catalog import FLOW_MODELS

    p = sub.add_parser("evaluate", help="evaluate a flow model on a benchmark (EPE, 1/3/5 px)",
                       formatter_class=argparse.RawDescriptionHelpFormatter, description=(
        "Evaluate a flow model on one or more datasets, clean or degraded (a mirror written by `daflow degrade`),\n"
        "and print the paper's metrics (EPE and % of pixels with error > 1, 3, 5 px) as Markdown; write JSON.\n\n"
        "Models:\n" + "\n".join(f"  {k:11s} {v.description}" for k, v in FLOW_MODELS.items())
        + "\n  daflow      DA-Flow: --weights FOLDER from `daflow train flow` (per-step table, Table 1-3 layouts)"
        + "\n  daflow-tiny DA-Flow-tiny, bundled (trained by `daflow train recipe tiny`)" + "\n\n\nDATASET_SPEC is KIND:TARGET[?key=value&...]:\n" + datasets.__doc__.split("\n\n", 2)[2]))
    p.add_argument("--model", required=True, help="model name (see above), daflow (--weights FOLDER) or daflow-tiny (bundled)")
    p.add_argument("--data", required=True, action="append", metavar="DATASET_SPEC", help="dataset spec; repeatable")
    _add_model_args(p, default_iters_help="refinement iterations (default: RAFT 12, the paper's M; SEA-RAFT its preset's; "
                    "DA-Flow 20, the paper's inference setting)")
    _add_daflow_args(p)
    p.add_argument("--steps", default="all", help="DA-Flow: denoising steps to score, comma-separated or all (default); "
                   "the table has one column per step, their average (Table 1) and the mean-flow ensemble")
    p.add_argument("--max-pairs", type=int, help="evaluate only the first N pairs of each dataset (quick checks)")
    p.add_argument("--reduce", default="image", choices=("image", "pixel"),
                   help="image: mean over images of per-image means (paper); pixel: pooled over all pixels")
    p.add_argument("--workers", type=int, default=0, help="data-loading worker processes (default 0)")
    p.add_argument("-o", "--output", type=Path, help="JSON file for the results (default: print only)")
    p.set_defaults(func=_run_evaluate)


def _run_evaluate(args) -> int:
    from daflow.eval.benchmark import add_sintel_mean, evaluate_pairs, markdown_table, paper_row
    from daflow.eval.datasets import build_eval_sets, parse_dataset_spec
    from daflow.files import atomic_write_text

    specs = [parse_dataset_spec(s) for s in args.data]  # all specs checked before any model is built
    videos = [s for s in specs if s.kind == "video"]
    if videos:
        if len(videos) != len(specs):
            raise ValueError("--data video:... (no ground truth) cannot be mixed with benchmark specs in one run")
        return _evaluate_video(args, videos)
    if args.model in DAFLOW_NAMES:
        return _evaluate_daflow(args, specs)
    sets = [e for s in specs for e in build_eval_sets(s)]
    model = _build_model(args, args.model)
    print(f"daflow evaluate: {model.description} on {model.device}")
    results = []
    for eval_set in sets:
        r = evaluate_pairs(model, eval_set, max_samples=args.max_pairs, reduce=args.reduce, workers=args.workers,
                           progress=not args.no_progress)
        results.append(r)
        print(f"{r['label']}: {r['pairs']} pairs, {r['seconds_per_pair']:.3f} s/pair")
    results = add_sintel_mean(results)
    print(markdown_table({r["label"]: r["metrics"] for r in results}, first_column=f"{args.model} on"))
    print()
    print(paper_row(args.model, [r for r in results if not r["label"].startswith("sintel (")]))
    if args.output:
        record = {"model": args.model, "description": model.description, "weights": str(args.weights) if args.weights else None,
                  "random_init": model.random_init, "iters": args.iters, "scale": args.scale, "reduce": args.reduce,
                  "max_pairs": args.max_pairs, "daflow": daflow.__version__, "results": results}
        atomic_write_text(args.output, json.dumps(record, indent=2))
        print(f"wrote {args.output}")
    return 0


# ------------------------------------------------------------------------------------------- analyze

def _add_backbone_args(p, *, in_weights: bool = False) -> None:
    """The DiT4SR / VAE / null-prompt options every diffusion command shares (``in_weights``: a DA-Flow model
    folder given with ``--weights`` already holds the DiT and VAE, so these only override it)."""
    dit_help, vae_help = (("DiT4SR transformer (default: WEIGHTS/transformer)", "SD3.5 VAE (default: WEIGHTS/vae)")
                          if in_weights else
                          ("DiT4SR transformer: dit4sr_q folder, its transformer/ folder, or the safetensors file (never "
                           "downloaded; Hugging Face acceptee/DiT4SR)",
                           "SD3.5 VAE: the stable-diffusion-3.5-medium folder, its vae/ folder or the file"))
    p.add_argument("--dit4sr", type=Path, help=dit_help)
    p.add_argument("--vae", type=Path, help=vae_help)
    p.add_argument("--null-prompt", type=Path, help="folder with NULL_prompt_embeds.pt and NULL_pooled_prompt_embeds.pt "
                   "(published with DiT4SR); default: zeros, logged")
    p.add_argument("--preset", default="tiny", choices=("tiny", "paper"), help="model size for --random-init (default tiny)")
    p.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16", "float16"),
                   help="DiT weights dtype (default auto: bfloat16 on CUDA, float32 on CPU); the VAE stays float32")
    p.add_argument("--seed", type=int, default=0, help="seed of the starting noise (default 0)")


def _add_diffusion_args(p) -> None:
    _add_backbone_args(p)
    p.add_argument("--random-init", action="store_true", help="random weights at --preset size instead of --dit4sr/--vae "
                   "(smoke tests: the features carry no learned correspondence)")
    p.add_argument("--device", default="auto", help="torch device (default auto: cuda if available, else cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _device_and_dtype(args):
    """Resolve ``--device auto`` in place and return the DiT dtype of ``--dtype`` (auto: bf16 on CUDA, else fp32)."""
    import torch

    args.device = _device(args.device)
    return {"auto": torch.bfloat16 if str(args.device).startswith("cuda") else torch.float32, "float32": torch.float32,
            "bfloat16": torch.bfloat16, "float16": torch.float16}[args.dtype]


def _build_backbone(args):
    from daflow.models.backbone import DiffusionBackbone

    dtype = _device_and_dtype(args)
    if args.random_init:
        if args.dit4sr or args.vae:
            raise ValueError("--random-init and --dit4sr/--vae exclude each other")
        print(f"warning: random {args.preset} weights (--random-init): the features carry no learned correspondence",
              file=sys.stderr)
        backbone = DiffusionBackbone.from_preset(args.preset, seed=args.seed)
        backbone.transformer.to(dtype)  # the VAE stays float32, as from_pretrained keeps it
        return backbone.to(args.device)
    if not (args.dit4sr and args.vae):
        raise ValueError("give --dit4sr and --vae (the published DiT4SR transformer and SD3.5 VAE), or --random-init")
    return DiffusionBackbone.from_pretrained(args.dit4sr, args.vae, args.null_prompt, dtype=dtype, device=args.device)


def _add_analyze(sub) -> None:
    from daflow.eval import datasets

    p = sub.add_parser("analyze", help="zero-shot correspondence of diffusion features, layer x denoising step (paper §4.3)",
                       formatter_class=argparse.RawDescriptionHelpFormatter, description=(
        "Run the lifted DiT4SR's 10-step denoising on F-frame clips (default 3, as in training; windows share no\n"
        "pair), turn the query of frame k and the key of frame k+1 of every block at every step into a flow by the\n"
        "dot-product cost volume (Eq. 12) and soft-argmax, and measure its EPE against the clips' reference flow\n"
        "(exact ground truth, or teacher pseudo ground truth on the HQ frames, as the paper does on YouHQ40).\n"
        "Writes OUT/analysis.json, analysis.md (block x step tables) and the paper's figures: top_layers.png\n"
        "(Fig. 3a / 8a), top4_steps.png (Fig. 3b / 8b), all_layers.png (Fig. 7) and a heatmap per feature kind.\n\n"
        "The paper's protocol: degrade YouHQ40 (daflow degrade youhq), label its HQ frames with SEA-RAFT\n"
        "(daflow pseudo-gt --iters 4), then\n"
        "  daflow analyze --data labeled:YouHQ40-LQ?labels=YouHQ40-pgt --dit4sr dit4sr_q --vae sd3.5 -o out\n\n"
        "DATASET_SPEC is KIND:TARGET[?key=value&...]:\n" + datasets.__doc__.split("\n\n", 2)[2]))
    p.add_argument("--data", required=True, action="append", metavar="DATASET_SPEC", help="dataset spec; repeatable")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    _add_diffusion_args(p)
    p.add_argument("--label", default=None, help="name of this model in tables and figures (default: Lifting, or "
                   "Random with --random-init)")
    p.add_argument("--frames", type=int, default=3, help="frames per clip (default 3)")
    p.add_argument("--steps", type=int, default=10, help="denoising steps (default 10)")
    p.add_argument("--features", default="qk", choices=("qk", "adanorm", "both"),
                   help="qk: query/key (paper); adanorm: post-AdaNorm hidden states (App. B.2); both")
    p.add_argument("--attention", default="attn", choices=("attn", "attn2"),
                   help="which attention's Q/K: the joint attn (default) or the dual attn2 of blocks 0-12")
    p.add_argument("--blocks", default="all", help="comma-separated 0-based blocks, or all (default)")
    p.add_argument("--argmax", default="soft", choices=("soft", "hard"), help="soft-argmax (paper) or hard argmax")
    p.add_argument("--temperature", type=float, default=1.0, help="soft-argmax temperature dividing the dot products "
                   "(default 1: the literal Eq. 12; the paper gives none)")
    p.add_argument("--max-clips", type=int, help="analyse only the first N clips of each dataset")
    p.add_argument("--compare", type=Path, action="append", default=[], metavar="ANALYSIS_JSON",
                   help="add an earlier run's analysis.json to the figures (e.g. Baseline vs Lifting); repeatable")
    p.set_defaults(func=_run_analyze)


def _run_analyze(args) -> int:
    from daflow.eval.analysis import run_analysis
    from daflow.eval.datasets import build_eval_sets, parse_dataset_spec
    from daflow.eval.report import load_series, write_analysis

    if args.frames < 2:
        raise ValueError(f"--frames must be at least 2, got {args.frames}")
    if args.steps < 1:
        raise ValueError(f"--steps must be at least 1, got {args.steps}")
    if args.max_clips is not None and args.max_clips < 1:
        raise ValueError(f"--max-clips must be at least 1, got {args.max_clips}")
    try:
        blocks = None if args.blocks == "all" else [int(b) for b in args.blocks.split(",") if b.strip()]
    except ValueError:
        raise ValueError(f"--blocks must be comma-separated integers or all, got {args.blocks!r}") from None
    _output_dir(args.output)
    compare = [s for path in args.compare for s in load_series(path)]
    specs = [parse_dataset_spec(s) for s in args.data]
    sets = [e for s in specs for e in build_eval_sets(s, num_frames=args.frames, stride=args.frames - 1)]
    backbone = _build_backbone(args)
    label = args.label or ("Random" if args.random_init else "Lifting")
    features = ("qk", "adanorm") if args.features == "both" else (args.features,)
    samples = _concat([e.dataset for e in sets], args.max_clips)
    print(f"daflow analyze: {len(samples)} clips of {args.frames} frames from {', '.join(e.label for e in sets)}; "
          f"{args.steps} steps on {backbone.device}")
    t0 = time.perf_counter()
    tables = run_analysis(backbone, samples, features=features, attention=args.attention, blocks=blocks,
                          steps=args.steps, mode=args.argmax, temperature=args.temperature, seed=args.seed,
                          progress=not args.no_progress, label="analyze")
    meta = {"data": [str(s) for s in specs], "frames": args.frames, "steps": args.steps, "argmax": args.argmax,
            "temperature": args.temperature, "seed": args.seed, "dit4sr": str(args.dit4sr) if args.dit4sr else None,
            "vae": str(args.vae) if args.vae else None, "random_init": args.random_init,
            "preset": args.preset if args.random_init else None, "seconds": round(time.perf_counter() - t0, 2),
            "daflow": daflow.__version__}
    written = write_analysis(args.output, label, tables, meta=meta, compare=compare)
    for t in tables:
        means = t.mean_epe()
        best = t.ranking()[:4]
        print(f"{label} {t.name}: best blocks {best} (step-averaged EPE " + ", ".join(f"{means[b]:.3f}" for b in best)
              + f") over {t.pairs} pairs")
    print(f"wrote {len(written)} files to {args.output} in {time.perf_counter() - t0:.1f} s")
    return 0


def _concat(datasets, max_per_set):
    """The clips of several datasets (the first ``max_per_set`` of each) as one sequence."""
    import torch

    parts = [d if max_per_set is None else torch.utils.data.Subset(d, range(min(max_per_set, len(d)))) for d in datasets]
    return torch.utils.data.ConcatDataset(parts)


# ---------------------------------------------------------------------------------------------- train

def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train DA-Flow's stages (lift, flow), the RAFT baselines (raft), or all at tiny size (recipe)", description=(
        "Training stages of the paper. `daflow train lift` fine-tunes the lifted DiT4SR (stage 1, paper §4.2);\n"
        "`daflow train flow` trains the DPT heads and the hybrid RAFT with the DiT frozen (stage 2, §4.4);\n"
        "`daflow train raft` trains plain RAFT on the same data (the RAFT / RAFT* baselines, App. C.2);\n"
        "`daflow train recipe tiny` runs every stage at small size on a CPU."))
    stages = p.add_subparsers(dest="stage", metavar="STAGE")
    _add_train_lift(stages)
    _add_train_flow(stages)
    _add_train_raft(stages)
    _add_train_recipe(stages)
    _add_train_refine(stages)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _add_train_lift(stages) -> None:
    from daflow.train import data

    p = stages.add_parser("lift", help="stage 1: fine-tune the lifted DiT4SR with the flow-matching loss",
                          formatter_class=argparse.RawDescriptionHelpFormatter, description=(
        "Fine-tune DiT4SR with full spatio-temporal attention on F-frame clips (paper §4.2, Eq. 6): HQ and LQ frames\n"
        "through the frozen VAE, logit-normal timesteps, x0-preconditioned flow-matching loss (DiT4SR's), null\n"
        "prompt. Writes RUN/transformer (loadable with --dit4sr), RUN/checkpoints/step_N (safetensors, resumed\n"
        "automatically when RUN already holds one), RUN/log.jsonl and RUN/train_lift.json. Multi-GPU:\n"
        "  accelerate launch -m daflow.cli train lift ...\n\n"
        "--preset tiny trains the tiny model from random weights on CPU, e.g.\n"
        "  daflow train lift --preset tiny --random-init --data 'synthetic:tiny?n=64&size=64x64' -o runs/lift\n"
        "--preset paper has the paper's settings (20K steps; batch 8 per GPU, 4 GPUs; 512x512 crops; 3 frames):\n"
        "  daflow train lift --preset paper --dit4sr dit4sr_q --vae sd3.5 --null-prompt dit4sr_null \\\n"
        "      --data youhq:YouHQ-Train -o runs/lift\n\n" + "\n\n".join(data.__doc__.split("\n\n")[1:3])))
    p.add_argument("--data", required=True, metavar="DATASET_SPEC", help="training clips (see above)")
    p.add_argument("-o", "--output", type=Path, required=True, help="run folder")
    _add_diffusion_args(p)
    p.add_argument("--steps", type=int, help="total optimisation steps (tiny 200, paper 20000)")
    p.add_argument("--batch", type=int, help="clips per step and process (tiny 2, paper 8)")
    p.add_argument("--frames", type=int, help="frames per clip (default 3)")
    p.add_argument("--crop", type=_parse_size, help="random crop HxW, multiples of 16 (tiny 64x64, paper 512x512)")
    p.add_argument("--lr", type=float, help="AdamW learning rate (tiny 5e-4, paper 5e-5 as DiT4SR)")
    p.add_argument("--trainable", choices=("control", "attention", "all"), help="which parameters train "
                   "(paper: control, DiT4SR's choice; tiny: all)")
    p.add_argument("--loss", choices=("x0", "velocity"), help="x0: DiT4SR's preconditioned loss (default); velocity: Eq. 6")
    p.add_argument("--degrade", default="realbasicvsr", help="on-the-fly degradation preset for sources without LQ "
                   "frames (default realbasicvsr, the paper's; none to train on clean LQ = HQ)")
    p.add_argument("--mixed-precision", choices=("auto", "no", "bf16", "fp16"), help="default auto: bf16 on CUDA")
    p.add_argument("--gradient-checkpointing", action=argparse.BooleanOptionalAction, default=None,
                   help="recompute blocks in the backward pass (paper preset: on)")
    p.add_argument("--save-every", type=int, help="checkpoint interval in steps")
    p.add_argument("--workers", type=int, help="data-loading worker processes")
    p.set_defaults(func=_run_train_lift)


def _run_train_lift(args) -> int:
    import dataclasses

    from daflow.models.vae import save_vae
    from daflow.train.data import build_clip_source
    from daflow.train.lift import LIFT_PRESETS, train_lift

    _output_dir(args.output)
    overrides = {k: v for k, v in {
        "steps": args.steps, "batch": args.batch, "frames": args.frames, "crop": args.crop, "lr": args.lr,
        "trainable": args.trainable, "loss": args.loss, "mixed_precision": args.mixed_precision,
        "gradient_checkpointing": args.gradient_checkpointing, "save_every": args.save_every, "workers": args.workers,
        "seed": args.seed}.items() if v is not None}
    config = dataclasses.replace(LIFT_PRESETS[args.preset], **overrides)
    source = build_clip_source(args.data, num_frames=config.frames, degrade=args.degrade)
    backbone = _build_backbone(args)
    info = {"dit4sr": str(args.dit4sr) if args.dit4sr else None, "vae": str(args.vae) if args.vae else None,
            "random_init": args.random_init, "preset": args.preset}
    print(f"daflow train lift: {args.preset} settings, {config.steps} steps of {config.batch} x {config.frames}-frame "
          f"{config.crop[0]}x{config.crop[1]} clips from {args.data}; trainable: {config.trainable}")
    summary = train_lift(backbone, source, args.output, config, model_info=info, progress=not args.no_progress)
    if args.random_init:  # the VAE is part of the model only when it was made here
        save_vae(backbone.vae, args.output / "vae")
    print(f"steps {summary['start']} -> {summary['steps']}: loss {summary['first_loss']:.4f} -> {summary['last_loss']:.4f} "
          f"({summary['trainable_parameters']:,} trainable parameters, {summary['seconds']:.1f} s); "
          f"transformer in {args.output / 'transformer'}")
    return 0


def _add_daflow_args(p) -> None:
    g = p.add_argument_group("DA-Flow (--model daflow)", "--weights is the folder written by `daflow train flow` "
                             "(config.json, flownet.safetensors, and transformer/ + vae/ unless given here)")
    _add_backbone_args(g, in_weights=True)
    g.add_argument("--denoise-steps", type=int, default=10, help="denoising schedule length (default 10, the paper's)")


def _build_daflow(args):
    if args.model == "daflow-tiny" and (args.weights or args.random_init):
        raise ValueError("--model daflow-tiny is the bundled model; use --model daflow with --weights or --random-init")
    if getattr(args, "scale", None) is not None:
        raise ValueError("--scale applies to SEA-RAFT only; DA-Flow runs at the input resolution")
    dtype = _device_and_dtype(args)
    if args.denoise_steps < 1:
        raise ValueError(f"--denoise-steps must be >= 1, got {args.denoise_steps}")
    model = _load_daflow(args, dtype)
    model.raft.corr_mode = args.corr  # --corr: all-pairs, windowed or auto, as for RAFT
    return model


def _load_daflow(args, dtype):
    from daflow.models.daflow import DAFlow

    if args.random_init:
        if args.weights:
            raise ValueError("--random-init and --weights exclude each other")
        print(f"warning: random {args.preset} DA-Flow weights (--random-init): the flow is meaningless", file=sys.stderr)
        model = DAFlow(args.preset, seed=args.seed)
        model.backbone.transformer.to(dtype)
        return model.to(args.device).eval()
    if not args.weights:
        from daflow.models import bundled

        if not bundled.available():
            raise ValueError("--model daflow needs --weights FOLDER (written by daflow train flow), or --random-init "
                             "(this installation has no bundled DA-Flow-tiny)")
        print(f"note: {bundled.NOTICE}", file=sys.stderr)
        return bundled.load_daflow_tiny(device=args.device)
    return DAFlow.load(args.weights, dit4sr=args.dit4sr, vae=args.vae, null_prompt=args.null_prompt, dtype=dtype,
                       device=args.device).eval()


def _evaluate_daflow(args, specs) -> int:
    from daflow.data.base import CHUNKS
    from daflow.eval.benchmark import add_sintel_mean, markdown_table, paper_row
    from daflow.eval.datasets import build_eval_sets
    from daflow.eval.stepwise import evaluate_daflow, per_step_table
    from daflow.files import atomic_write_text

    steps = None if args.steps == "all" else _int_list(args.steps, "--steps")
    sets = [e for s in specs for e in build_eval_sets(s, num_frames=3, stride=CHUNKS)]
    model = _build_daflow(args)
    iters = args.iters or 20
    print(f"daflow evaluate: DA-Flow ({model.config.raft} RAFT, blocks {list(model.config.blocks)}), {iters} iterations, "
          f"{args.denoise_steps}-step schedule, 3-frame chunks, on {model.device}")
    results = []
    for eval_set in sets:
        r = evaluate_daflow(model, eval_set, steps=steps, num_steps=args.denoise_steps, iters=iters, seed=args.seed,
                            max_samples=args.max_pairs, reduce=args.reduce, progress=not args.no_progress)
        results.append(r)
        print(f"{r['label']}: {r['pairs']} pairs, {r['seconds_per_pair']:.3f} s/pair (all requested steps)")
    print(per_step_table(results))
    print()
    summary = add_sintel_mean([{"label": r["label"], "spec": r["spec"], "metrics": r["average"], "pairs": r["pairs"]}
                               for r in results])
    print(markdown_table({r["label"]: r["metrics"] for r in summary}, first_column="DA-Flow (average over steps) on"))
    print()
    print(paper_row("DA-Flow", [r for r in summary if not r["label"].startswith("sintel (")]))
    if args.output:
        record = {"model": "daflow", "weights": str(args.weights) if args.weights else None, "random_init": args.random_init,
                  "iters": iters, "denoise_steps": args.denoise_steps, "seed": args.seed, "reduce": args.reduce,
                  "max_chunks": args.max_pairs, "daflow": daflow.__version__, "results": results}
        atomic_write_text(args.output, json.dumps(record, indent=2))
        print(f"wrote {args.output}")
    return 0


def _evaluate_video(args, specs) -> int:
    """``--data video:PATH[?clean=CLEAN]``: warping error and FB consistency, zero flow and DIS as reference rows."""
    from daflow.eval.video_quality import evaluate_video, markdown, video_pairs
    from daflow.files import atomic_write_text
    from daflow.inference import daflow_estimator, pairwise

    pairs = [video_pairs(s.target, s.options.get("clean")) for s in specs]  # inputs checked first
    if args.max_pairs is not None and args.max_pairs < 1:
        raise ValueError(f"--max-pairs must be >= 1, got {args.max_pairs}")
    if args.model in DAFLOW_NAMES:
        step = 0 if args.steps == "all" else _int_list(args.steps, "--steps")[0]
        model = _build_daflow(args)
        est, device = daflow_estimator(model, step=step, num_steps=args.denoise_steps, iters=args.iters or 20,
                                       seed=args.seed), model.device
        label = f"{args.model} (step {step})"
    elif args.model == "dis":  # DIS is a reference row already
        est, device, label = None, "cpu", args.model
    else:
        flow_model = _build_model(args, args.model)
        est, device, label = pairwise(flow_model), flow_model.device, args.model
    results = []
    for spec, vp in zip(specs, pairs):
        r = evaluate_video({label: est} if est is not None else {}, vp, max_pairs=args.max_pairs, device=device,
                           progress=not args.no_progress)
        r["spec"] = str(spec)
        results.append(r)
        print(markdown(r, title=f"{spec}"))
        print()
    if args.output:
        atomic_write_text(args.output, json.dumps({"model": args.model, **_model_record(args), "daflow": daflow.__version__,
                                                   "results": results}, indent=2))
        print(f"wrote {args.output}")
    return 0


def _int_list(text: str, name: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{name} must be comma-separated integers, got {text!r}") from None


def _add_train_flow(stages) -> None:
    from daflow.train import data

    p = stages.add_parser("flow", help="stage 2: train the DPT heads and hybrid RAFT on frozen diffusion features",
                          formatter_class=argparse.RawDescriptionHelpFormatter, description=(
        "Train DA-Flow's flow network (three DPT heads + hybrid RAFT, Eq. 13-18) on LQ clips with flow labels, the\n"
        "lifted DiT4SR frozen: a random denoising step per batch, M = 12 iterations, gamma 0.8, AdamW, RAFT's\n"
        "one-cycle schedule. RAFT starts from --raft-init (raft-things.pth, the paper's) with zero GRU columns for\n"
        "the diffusion context. Writes RUN/model (config.json + flownet.safetensors; loadable with\n"
        "daflow estimate/evaluate --model daflow --weights RUN/model), checkpoints (resumed automatically), logs.\n\n"
        "Tiny, on CPU, from a stage-1 run:\n"
        "  daflow train flow --preset tiny --dit4sr runs/lift/transformer --vae runs/lift/vae \\\n"
        "      --data 'synthetic:tiny?n=256&size=64x64' -o runs/flow\n"
        "Paper: --preset paper --dit4sr runs/lift/transformer --vae sd3.5 --null-prompt dit4sr_null \\\n"
        "      --raft-init raft-things.pth --data 'labeled:YouHQ-LQ?labels=YouHQ-pgt' -o runs/flow\n\n"
        + "\n\n".join(data.__doc__.split("\n\n")[1:3])))
    p.add_argument("--data", required=True, metavar="DATASET_SPEC", help="training clips with flow labels (see above)")
    p.add_argument("-o", "--output", type=Path, required=True, help="run folder")
    _add_diffusion_args(p)
    p.add_argument("--raft-init", type=Path, help="RAFT weights to start from (raft-things.pth; default: random)")
    p.add_argument("--blocks", help="tapped blocks, comma-separated (default: the preset's; paper 3,13,16,17)")
    p.add_argument("--head", choices=("dpt", "bilinear"), help="upsampling heads (default dpt; bilinear: App. C.3)")
    p.add_argument("--steps", type=int, help="optimisation steps (tiny 300, paper 20000)")
    p.add_argument("--batch", type=int, help="clips per step and process (tiny 2, paper 8)")
    p.add_argument("--frames", type=int, help="frames per clip (default 3)")
    p.add_argument("--crop", type=_parse_size, help="random crop HxW, multiples of 16 (tiny 64x64, paper 512x512)")
    p.add_argument("--lr", type=float, help="peak learning rate (tiny 4e-4, paper 5e-5)")
    p.add_argument("--iters", type=int, help="refinement iterations M (tiny 6, paper 12)")
    p.add_argument("--denoise-steps", type=int, help="denoising schedule length (default 10)")
    p.add_argument("--degrade", default="realbasicvsr", help="on-the-fly degradation for sources without LQ frames "
                   "(default realbasicvsr; none for clean frames)")
    p.add_argument("--mixed-precision", choices=("auto", "no", "bf16", "fp16"), help="default auto: bf16 on CUDA")
    p.add_argument("--save-every", type=int, help="checkpoint interval in steps")
    p.add_argument("--workers", type=int, help="data-loading worker processes")
    p.set_defaults(func=_run_train_flow)


def _run_train_flow(args) -> int:
    import dataclasses

    from daflow.models.daflow import DAFLOW_PRESETS, DAFlow
    from daflow.train.data import build_clip_source
    from daflow.train.flow import FLOW_PRESETS, train_flow

    _output_dir(args.output)
    overrides = {k: v for k, v in {
        "steps": args.steps, "batch": args.batch, "frames": args.frames, "crop": args.crop, "lr": args.lr,
        "iters": args.iters, "num_steps": args.denoise_steps, "mixed_precision": args.mixed_precision,
        "save_every": args.save_every, "workers": args.workers, "seed": args.seed}.items() if v is not None}
    config = dataclasses.replace(FLOW_PRESETS[args.preset], **overrides)
    model_config = DAFLOW_PRESETS[args.preset]
    if args.blocks:
        blocks = tuple(_int_list(args.blocks, "--blocks"))
        if len(blocks) != len(model_config.blocks):
            raise ValueError(f"--blocks: the DPT heads take {len(model_config.blocks)} levels (scales "
                             f"{model_config.dpt_scales}); give {len(model_config.blocks)} blocks, got {list(blocks)}")
        model_config = dataclasses.replace(model_config, blocks=blocks)
    if args.head:
        model_config = dataclasses.replace(model_config, head=args.head)
    source = build_clip_source(args.data, num_frames=config.frames, degrade=args.degrade)
    backbone = _build_backbone(args)
    model = DAFlow(model_config, backbone)
    if args.raft_init:
        model.init_raft(args.raft_init)
    info = {"dit4sr": str(args.dit4sr) if args.dit4sr else None, "vae": str(args.vae) if args.vae else None,
            "random_init": args.random_init, "preset": args.preset, "raft_init": str(args.raft_init) if args.raft_init else None,
            "config": model_config.to_dict()}
    print(f"daflow train flow: {args.preset} settings, {config.steps} steps of {config.batch} x {config.frames}-frame "
          f"{config.crop[0]}x{config.crop[1]} clips from {args.data}; blocks {list(model_config.blocks)}, "
          f"RAFT-{model_config.raft} from {args.raft_init or 'random weights'}")
    summary = train_flow(model, source, args.output, config, model_info=info, save_backbone=args.random_init,
                         progress=not args.no_progress)
    print(f"steps {summary['start']} -> {summary['steps']}: loss {summary['first_loss']:.3f} -> {summary['last_loss']:.3f} "
          f"({summary['trainable_parameters']:,} trainable parameters, {summary['seconds']:.1f} s); model in "
          f"{args.output / 'model'}")
    return 0


def _add_train_raft(stages) -> None:
    p = stages.add_parser("raft", help="RAFT on clean or LQ frames with flow labels (RAFT / RAFT* baselines, App. C.2)",
                          description=(
        "Train RAFT with DA-Flow's stage-2 setup (Eq. 18, one-cycle, crops, labels) on the clean (--inputs hq) or "
        "degraded (--inputs lq, RAFT*) frames of the clips; --init starts from RAFT weights (raft-things.pth or an "
        "earlier run). Writes RUN/model/raft.safetensors (evaluate with --model raft or raft-small --weights ...)."))
    p.add_argument("--data", required=True, metavar="DATASET_SPEC", help="training clips with flow labels")
    p.add_argument("-o", "--output", type=Path, required=True, help="run folder")
    p.add_argument("--preset", default="tiny", choices=("tiny", "paper"), help="settings (tiny: RAFT-small, 64x64 crops)")
    p.add_argument("--inputs", choices=("hq", "lq"), help="train on the clean (hq) or degraded (lq, RAFT*) frames (default lq)")
    p.add_argument("--init", type=Path, help="RAFT weights to start from")
    p.add_argument("--steps", type=int, help="optimisation steps")
    p.add_argument("--batch", type=int, help="clips per step and process")
    p.add_argument("--crop", type=_parse_size, help="random crop HxW")
    p.add_argument("--lr", type=float, help="peak learning rate")
    p.add_argument("--iters", type=int, help="refinement iterations")
    p.add_argument("--degrade", default="realbasicvsr", help="on-the-fly degradation preset (default realbasicvsr)")
    p.add_argument("--device", default="auto", help="torch device (default auto)")
    p.add_argument("--seed", type=int, default=0, help="run seed (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_train_raft)


def _run_train_raft(args) -> int:
    import dataclasses

    from daflow.train.data import build_clip_source
    from daflow.train.raft import RAFT_PRESETS, train_raft

    _output_dir(args.output)
    overrides = {k: v for k, v in {"steps": args.steps, "batch": args.batch, "crop": args.crop, "lr": args.lr,
                                   "iters": args.iters, "inputs": args.inputs, "seed": args.seed}.items() if v is not None}
    config = dataclasses.replace(RAFT_PRESETS[args.preset], **overrides)
    source = build_clip_source(args.data, num_frames=config.frames, degrade=args.degrade)
    device = _device(args.device)
    print(f"daflow train raft: RAFT-{'small' if config.small else 'large'} on {config.inputs} frames of {args.data}, "
          f"{config.steps} steps, from {args.init or 'random weights'}")
    summary = train_raft(source, args.output, config, init=args.init, device=device, progress=not args.no_progress)
    print(f"steps {summary['start']} -> {summary['steps']}: loss {summary['first_loss']:.3f} -> {summary['last_loss']:.3f}; "
          f"model in {args.output / 'model'}")
    return 0


def _add_train_refine(stages) -> None:
    p = stages.add_parser("refine", help="the bundled default: RAFT-small refining DIS on degraded clips (issue 15)",
                          formatter_class=argparse.RawDescriptionHelpFormatter, description=(
        "Train the DIS->RAFT refiner (daflow.models.refine) that ships as the default flow model: N mixture clips\n"
        "(sizes 256x256..384x512, sub-pixel to 1/8-width motion, static scenes, every bundled photo and procedural\n"
        "textures, RealBasicVSR / mild / severe / real-codec degradations) are rendered into RUN/mixture with DIS on\n"
        "their LQ pairs, then RAFT-small learns to correct DIS. Resumable: finished clips and checkpoints are kept.\n"
        "The shipped weights: `daflow train refine -o RUN --bundle-into src/daflow/weights` (about 1.5 h on 2 cores)."))
    p.add_argument("-o", "--output", type=Path, required=True, help="run folder (RUN/mixture holds the clips)")
    p.add_argument("--preset", default="default", choices=("default", "tiny"), help="training settings (tiny: a few "
                   "steps on 64x64 crops, for tests)")
    p.add_argument("--clips", type=int, default=1500, help="mixture clips to render (default 1500)")
    p.add_argument("--mixture", default=None, choices=("default", "tiny"), help="mixture preset (default: as --preset)")
    p.add_argument("--init", type=Path, help="RAFT-small weights to start from (default: the bundled RAFT*-tiny)")
    p.add_argument("--steps", type=int, help="optimisation steps (default 2500)")
    p.add_argument("--workers", type=int, default=2, help="processes rendering the clips (default 2)")
    p.add_argument("--bundle-into", type=Path, help="after training, copy the model with its provenance into this "
                   "folder (src/daflow/weights ships it with the package)")
    p.add_argument("--device", default="auto", help="torch device (default auto)")
    p.add_argument("--seed", type=int, default=0, help="run seed (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_run_train_refine)


def _run_train_refine(args) -> int:
    import dataclasses

    from daflow.data.mixture import build_cache
    from daflow.models.bundled import bundled_path
    from daflow.train.refine import REFINE_PRESETS, train_refiner

    out = _output_dir(args.output)
    if args.clips < 1:
        raise SystemExit(f"daflow train refine: --clips must be >= 1, got {args.clips}")
    init = args.init or bundled_path("raft-star-tiny") / "raft.safetensors"
    overrides = {"seed": args.seed} | ({"steps": args.steps} if args.steps is not None else {})
    config = dataclasses.replace(REFINE_PRESETS[args.preset], **overrides)
    cache = build_cache(out / "mixture", args.clips, config=args.mixture or args.preset, seed=args.seed,
                        workers=args.workers, progress=not args.no_progress)
    summary = train_refiner(cache, out, config, init=init, device=_device(args.device), progress=not args.no_progress)
    print(f"steps {summary['start']} -> {summary['steps']}: loss {summary['first_loss']} -> {summary['last_loss']}; "
          f"model in {out / 'model'}")
    if args.bundle_into:
        from daflow.models.bundled import bundle_refiner

        command = (f"daflow train refine -o {out} --preset {args.preset} --clips {args.clips} --steps {config.steps} "
                   f"--seed {args.seed}" + (f" --init {args.init}" if args.init else ""))
        print(f"bundled the DIS->RAFT refiner into {bundle_refiner(out, args.bundle_into, command=command)}")
    return 0


def _add_train_recipe(stages) -> None:
    from daflow.train import recipe

    p = stages.add_parser("recipe", help="every stage of the paper at small size on a CPU (the tiny recipe)",
                          formatter_class=argparse.RawDescriptionHelpFormatter, description=(
        "Run the tiny recipe into RUN_DIR: synthetic data with exact ground truth and its degraded mirror, stage 0\n"
        "(VAE, per-frame DiT4SR), stage 1 (lifting), the RAFT teacher and baseline, pseudo ground truth, the\n"
        "zero-shot layer analysis, stage 2 (pseudo and exact labels), RAFT* and Baseline*. Resumable: finished\n"
        "stages are skipped and every trainer resumes from its last checkpoint.\n\n"
        + recipe.__doc__.split("\n\n")[2]))
    p.add_argument("preset", choices=("tiny", "smoke", "restore", "restore-smoke"),
                   help="tiny: the real budget; smoke: every stage for a few steps; restore: the tiny restorer of "
                   "`daflow restore` (data, a wider VAE, per-frame DiT, lifting)")
    p.add_argument("-o", "--output", type=Path, required=True, help="run folder")
    p.add_argument("--only", action="append", help="run only this stage (repeatable)")
    p.add_argument("--bundle-into", type=Path, help="after the run, copy DA-Flow-tiny and RAFT*-tiny with their "
                   "provenance into this folder (src/daflow/weights ships them with the package)")
    p.add_argument("--device", default="auto", help="torch device for every stage (default auto: cuda if available, "
                   "else cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_run_train_recipe)


def _run_train_recipe(args) -> int:
    from daflow.train.recipe import RECIPE_PRESETS, Recipe

    _output_dir(args.output)
    recipe = Recipe(args.output, RECIPE_PRESETS[args.preset], progress=not args.no_progress, device=_device(args.device))
    times = recipe.run_all(only=args.only)
    print(f"recipe {args.preset}: {len(times)} stage(s) run in {sum(times.values()):.0f} s -> {args.output}")
    if args.bundle_into:
        from daflow.models.bundled import bundle_recipe, bundle_restorer

        command = f"daflow train recipe {args.preset} -o {args.output}"
        if args.preset.startswith("restore"):
            print(f"bundled the tiny restorer into {bundle_restorer(args.output, args.bundle_into, command=command)}")
        else:
            print(f"bundled DA-Flow-tiny and RAFT*-tiny into {bundle_recipe(args.output, args.bundle_into, command=command)}")
    return 0


# ------------------------------------------------------------------------------------------- estimate


def _add_estimate(sub) -> None:
    from daflow.inference import FORMATS

    p = sub.add_parser("estimate", help="optical flow of every consecutive pair of a video or frame folder",
                       formatter_class=argparse.RawDescriptionHelpFormatter, description=(
        "Estimate the flow k -> k+1 of every consecutive frame pair of a video file or a folder of frames and write\n"
        "OUT/flow/<frame>.<fmt> (optionally backward flow, occlusion masks and colour-wheel pictures). The default\n"
        "model, dis-raft, refines OpenCV's DIS with a RAFT-small trained on degraded clips. DA-Flow runs on\n"
        "3-frame chunks sharing their boundary frame; --step picks the flow: 0, the single-step mode (default: one DiT\n"
        "call per chunk), one step K (the denoising stops after it), or mean, the mean over all denoising steps\n"
        "(~9x the time, the same accuracy in our measurements). Resumable: pairs whose files exist are skipped; every file is written atomically."))
    p.add_argument("input", type=Path, help="video file or folder of frames")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    p.add_argument("--model", default="dis-raft", help="dis-raft (default: the bundled DIS->RAFT refiner, the most "
                   "accurate model that runs without downloads: see BENCHMARKS.md), daflow (DA-Flow: --weights, else "
                   "the bundled DA-Flow-tiny), daflow-tiny, or any `evaluate` model (raft, sea-raft-m, dis, ...)")
    _add_model_args(p, default_iters_help="refinement iterations (default: dis-raft 8, DA-Flow 20, RAFT 12)")
    _add_daflow_args(p)
    p.add_argument("--step", default="0", help="DA-Flow: a denoising step index (default 0, the single-step mode: one "
                   "DiT call per chunk, measured as accurate as the mean of steps at a ninth of the time), or mean")
    p.add_argument("--format", default="flo", choices=FORMATS, help="flow file format (default flo)")
    p.add_argument("--backward", action="store_true", help="also write the backward flow k+1 -> k")
    p.add_argument("--occlusion", action="store_true", help="also write forward-backward occlusion masks")
    p.add_argument("--viz", action="store_true", help="also write colour-wheel pictures")
    p.add_argument("--batch", type=int, default=1, help="chunks per forward pass (default 1)")
    _add_range_args(p)
    p.set_defaults(func=_run_estimate)


def _add_range_args(p) -> None:
    p.add_argument("--start", type=int, default=0, help="first frame (0-based index; default 0)")
    p.add_argument("--end", type=int, default=None, help="stop before this frame index (default: the last frame)")
    p.add_argument("--stride", type=int, default=1, help="take every N-th frame (default 1)")


def _model_record(args) -> dict:
    """What estimate.json says about the model: its name and where its weights came from."""
    if args.random_init:
        return {"weights": None, "random_init": True, "provenance": "random weights (--random-init)"}
    if args.weights:
        return {"weights": str(args.weights), "random_init": False}
    if args.model == "dis-raft":
        from daflow.models import bundled

        prov = bundled.provenance(bundled.BUNDLE_DIR / bundled.REFINER)
        return {"weights": f"bundled:{bundled.REFINER}", "random_init": False,
                "bundled_path": str(bundled.BUNDLE_DIR / bundled.REFINER),
                "provenance": {k: prov.get(k) for k in ("command", "daflow", "git_commit") if k in prov}}
    if args.model in DAFLOW_NAMES or args.model == "raft-star-tiny":
        from daflow.models import bundled

        name = "raft-star-tiny" if args.model == "raft-star-tiny" else "daflow-tiny"
        prov = bundled.provenance()
        return {"weights": f"bundled:{name}", "random_init": False, "bundled_path": str(bundled.BUNDLE_DIR / name),
                "provenance": {k: prov.get(k) for k in ("command", "daflow", "git_commit", "stages") if k in prov}}
    return {"weights": None, "random_init": False}


def _run_estimate(args) -> int:
    from daflow.data.video import FrameRange, FrameSource
    from daflow.inference import daflow_estimator, estimate_video, pairwise
    from daflow.models.catalog import FLOW_MODELS, min_input_side

    if args.model not in DAFLOW_NAMES and args.model not in FLOW_MODELS:
        raise ValueError(f"--model {args.model!r} is not known; choose daflow, daflow-tiny or one of {', '.join(FLOW_MODELS)}")
    _output_dir(args.output)
    # the input is checked before any model is built: missing, unreadable, too short or too small
    source = FrameSource(args.input)
    if (args.start, args.end, args.stride) != (0, None, 1):
        source = FrameRange(source, args.start, args.end, args.stride)
    if len(source) < 2:
        raise ValueError(f"{args.input}: {len(source)} frame(s) selected; flow needs at least 2")
    h, w = source.read(0, 1).shape[1:3]
    side = min_input_side(args.model, scale=args.scale)
    if side is not None and min(h, w) < side:
        raise ValueError(f"{args.input}: frames are {w}x{h} (WxH); --model {args.model} needs at least {side} px "
                         f"on each side")
    if args.model in DAFLOW_NAMES:
        step = args.step if args.step == "mean" else _int_list(args.step, "--step")[0]
        model = _build_daflow(args)
        estimator = daflow_estimator(model, step=step, num_steps=args.denoise_steps, iters=args.iters or 20, seed=args.seed)
        device = model.device
    else:
        flow_model = _build_model(args, args.model)
        estimator, device = pairwise(flow_model), flow_model.device
    print(f"daflow estimate: {estimator.description} on {device}; {len(source)} frames of {args.input}")
    settings = {**_model_record(args), "iters": args.iters, "step": args.step, "corr": args.corr, "start": args.start,
                "end": args.end, "stride": args.stride}
    report = estimate_video(estimator, source, args.output, fmt=args.format, backward=args.backward,
                            occlusion=args.occlusion, viz=args.viz, batch=args.batch, device=device,
                            progress=not args.no_progress, settings=settings)
    print(f"{report.pairs} pairs: wrote {report.written}, kept {report.skipped} existing -> {args.output} "
          f"[{report.seconds:.1f} s]")
    return 0


# ------------------------------------------------------------------------------------------ pseudo-gt


def _add_pseudo_gt(sub) -> None:
    from daflow.train.pseudo_gt import LABEL_FORMATS

    p = sub.add_parser("pseudo-gt", help="teacher flow labels for every consecutive pair of every clip (paper §4.4)",
                       description=(
        "Run the teacher on the HQ frames of every clip below CLIPS (video files or frame folders, e.g. YouHQ) and "
        "write the flow of every consecutive pair to OUT/<clip>/<frame stem>.<fmt>. The paper's teacher is SEA-RAFT "
        "in its spring-M configuration (half resolution) with Tartan-C-T-TSKH-spring540x960-M.pth, 20 iterations "
        "for training labels (4 for the analysis). Resumable: existing labels are kept."))
    p.add_argument("clips", type=Path, help="a folder of clips, one video file, or one frame folder")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder for the labels")
    p.add_argument("--teacher", default="sea-raft-m", help="teacher model (default sea-raft-m; any `evaluate` model)")
    p.add_argument("--format", default="flo", choices=LABEL_FORMATS, help="label file format (default flo)")
    p.add_argument("--batch-size", type=int, default=4, help="pairs per forward pass (default 4)")
    _add_model_args(p, default_iters_help="teacher iterations (default 20, the paper's training labels)")
    p.set_defaults(func=_run_pseudo_gt)


def _run_pseudo_gt(args) -> int:
    from daflow.train.pseudo_gt import write_pseudo_gt

    _output_dir(args.output)
    if args.iters is None:
        args.iters = 20
    if args.scale is None and args.teacher.startswith("sea-raft"):
        args.scale = -1  # the spring-M configuration the paper names (App. A)
    model = _build_model(args, args.teacher)
    print(f"daflow pseudo-gt: teacher {model.description} on {model.device}")
    settings = {"iters": args.iters, "scale": args.scale, "weights": str(args.weights) if args.weights else None}
    report = write_pseudo_gt(args.clips, args.output, model, fmt=args.format, batch_size=args.batch_size,
                             progress=not args.no_progress, settings=settings)
    print(f"{report.clips} clips, {report.pairs} pairs: wrote {report.written}, kept {report.skipped} existing -> {args.output}")
    return 0


# -------------------------------------------------------------------------------------------- restore


def _add_restore(sub) -> None:
    p = sub.add_parser("restore", help="flow-guided video restoration with the lifted DiT4SR (paper App. C.4)",
                       formatter_class=argparse.RawDescriptionHelpFormatter, description=(
        "Restore a video or frame folder with the lifted DiT4SR in overlapping chunks, with MGLD-style motion\n"
        "guidance: at every denoising step the predicted clean frames are warped onto their neighbours with the flow\n"
        "of --flow-model (estimated once on the LQ input) and take a gradient step on the occlusion-masked warping\n"
        "loss (weight --guidance; 0 = per-frame restoration). Writes OUT/frames/*.png at the input size, OUT/restored.mp4\n"
        "for a video input, OUT/restore.json. Resumable: finished chunks are kept. Score it with\n"
        "`daflow evaluate-restoration OUT --reference HQ`."))
    p.add_argument("input", type=Path, help="video file or folder of frames (degraded)")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    p.add_argument("--guidance", type=float, default=0.5, help="guidance weight w (default 0.5; 0 = off)")
    p.add_argument("--guidance-space", default="latent", choices=("latent", "image"),
                   help="latent (MGLD's, default) or image (the paper's variant, through the VAE decoder)")
    p.add_argument("--flow-model", default="dis-raft", help="flow for the guidance: any `evaluate` model (dis-raft, "
                   "dis, raft, sea-raft-m, raft-star-tiny, ...) or daflow-tiny (default dis-raft)")
    p.add_argument("--flow-weights", type=Path, help="weights of --flow-model where it needs them")
    p.add_argument("--steps", type=int, default=10, help="denoising steps (default 10)")
    p.add_argument("--chunk", type=int, default=3, help="frames restored together (default 3, the lifting's F)")
    p.add_argument("--overlap", type=int, default=1, help="frames shared with the previous chunk (default 1)")
    p.add_argument("--scale", type=int, default=1, choices=(1, 2, 4), help="upsample a truly low-resolution input "
                   "first (bicubic); degraded mirrors are already at the HQ size (default 1)")
    _add_diffusion_args(p)
    p.set_defaults(func=_run_restore)


def _restore_backbone(args):
    from daflow.models.backbone import DiffusionBackbone

    dtype = _device_and_dtype(args)
    if args.random_init:
        if args.dit4sr or args.vae:
            raise ValueError("--random-init and --dit4sr/--vae exclude each other")
        print(f"warning: random {args.preset} DiT4SR and VAE (--random-init): the restoration is meaningless",
              file=sys.stderr)
        return DiffusionBackbone.from_preset(args.preset, seed=args.seed).to(args.device)
    if args.dit4sr or args.vae:
        if not (args.dit4sr and args.vae):
            raise ValueError("give both --dit4sr and --vae (the published DiT4SR and the SD3.5 VAE)")
        return DiffusionBackbone.from_pretrained(args.dit4sr, args.vae, args.null_prompt, dtype=dtype, device=args.device)
    from daflow.models import bundled

    if (bundled.BUNDLE_DIR / bundled.RESTORER).is_dir():
        print("note: restoring with the bundled tiny restorer (`daflow train recipe restore`, a demonstration); for "
              "the paper's model pass --dit4sr, --vae and --null-prompt", file=sys.stderr)
        return bundled.load_restorer(device=args.device)
    if not bundled.available():
        raise ValueError("this installation has no bundled backbone: pass --dit4sr and --vae")
    print("note: restoring with the bundled tiny DiT4SR of DA-Flow-tiny (a demonstration); for the paper's "
          "model pass --dit4sr, --vae and --null-prompt", file=sys.stderr)
    backbone = bundled.load_daflow_tiny(device=args.device).backbone
    backbone.origin = "bundled:daflow-tiny"
    return backbone


def _flow_estimator(name: str, weights, device, *, seed: int = 0):
    """A ClipEstimator for any flow-model name (pairwise models and DA-Flow-tiny)."""
    from daflow.inference import daflow_estimator, pairwise
    from daflow.models.catalog import FLOW_MODELS
    from daflow.models.registry import build_flow_model

    if name == "daflow-tiny":
        from daflow.models import bundled

        return daflow_estimator(bundled.load_daflow_tiny(device=device), step=0, seed=seed)
    if name not in FLOW_MODELS:
        raise ValueError(f"--flow-model {name!r} is not known; choose daflow-tiny or one of {', '.join(FLOW_MODELS)}")
    return pairwise(build_flow_model(name, weights, device=device))


def _run_restore(args) -> int:
    from daflow.data.video import FrameSource
    from daflow.restoration import RestoreSettings, restore_video

    settings = RestoreSettings(guidance=args.guidance, space=args.guidance_space, flow_model=args.flow_model,
                               steps=args.steps, chunk=args.chunk, overlap=args.overlap, scale=args.scale,
                               seed=args.seed)
    _output_dir(args.output)
    source = FrameSource(args.input)
    if len(source) < 1:
        raise ValueError(f"{args.input}: no frames")
    args.device = _device(args.device)
    estimator = _flow_estimator(args.flow_model, args.flow_weights, args.device, seed=args.seed) if args.guidance > 0 else None
    backbone = _restore_backbone(args)
    record = {"dit4sr": str(args.dit4sr) if args.dit4sr else ("random" if args.random_init else backbone.origin),
              "vae": str(args.vae) if args.vae else None, "null_prompt": str(args.null_prompt) if args.null_prompt else None,
              "flow": estimator.description if estimator else None}
    print(f"daflow restore: {len(source)} frames of {args.input}, guidance {args.guidance} ({args.guidance_space}) "
          f"with {record['flow'] or 'no flow'}")
    report = restore_video(backbone, source, args.output, settings, flow_estimator=estimator,
                           progress=not args.no_progress, record=record)
    print(f"{report.frames} frames in {report.chunks} chunks ({report.skipped} already done) -> {args.output} "
          f"[{report.seconds:.1f} s]")
    return 0


def _add_evaluate_restoration(sub) -> None:
    p = sub.add_parser("evaluate-restoration", help="temporal consistency (E*warp) and PSNR/SSIM of a restored video",
                       description=(
        "E_warp of Lai et al. 2018 (frames in [0, 1], flow and occlusion of --flow-model on the reference video: "
        "forward-backward check and motion-boundary test; masked squared error summed over channels / visible "
        "pixels, mean over pairs), reported as E*warp = E_warp x 1000; with --reference also PSNR and SSIM. The "
        "flow comes from the reference (HQ) video when given, so every restoration is scored on the same pixels."))
    p.add_argument("restored", type=Path, help="restored video, frame folder, or a `daflow restore` output folder")
    p.add_argument("--reference", type=Path, help="the HQ video or frame folder (same length and size)")
    p.add_argument("--flow-model", default="dis", help="flow model for E_warp (default dis; any `evaluate` model)")
    p.add_argument("--flow-weights", type=Path, help="weights of --flow-model where it needs them")
    p.add_argument("--device", default="auto", help="torch device (default auto)")
    p.add_argument("-o", "--output", type=Path, help="write the result as JSON here")
    p.set_defaults(func=_run_evaluate_restoration)


def _run_evaluate_restoration(args) -> int:
    from daflow.data.video import FrameSource
    from daflow.eval.consistency import ConsistencyResult, psnr, ssim, warp_error
    from daflow.files import atomic_write_text
    from daflow.restoration import clip_flows

    path = args.restored / "frames" if (args.restored / "restore.json").is_file() else args.restored
    restored = FrameSource(path)
    frames = restored.read(0, len(restored))
    reference = None
    if args.reference is not None:
        ref = FrameSource(args.reference)
        if len(ref) != len(restored):
            raise ValueError(f"--reference {args.reference} has {len(ref)} frames but {path} has {len(restored)}")
        reference = ref.read(0, len(ref))
        if reference.shape != frames.shape:
            raise ValueError(f"--reference {args.reference} frames are {reference.shape[2]}x{reference.shape[1]}, "
                             f"the restored ones {frames.shape[2]}x{frames.shape[1]}; they must match")
    if len(frames) < 2:
        raise ValueError(f"{path}: E_warp needs at least 2 frames, got {len(frames)}")
    device = _device(args.device)
    estimator = _flow_estimator(args.flow_model, args.flow_weights, device)
    base = reference if reference is not None else frames
    flows = clip_flows(estimator, base, device)
    ewarp = warp_error(frames, flows.fw.permute(0, 2, 3, 1).numpy(), flows.bw.permute(0, 2, 3, 1).numpy())
    result = ConsistencyResult(ewarp_star=1000 * ewarp, frames=len(frames), flow_model=estimator.description,
                               flow_from="reference" if reference is not None else "restored",
                               psnr=psnr(frames, reference) if reference is not None else None,
                               ssim=ssim(frames, reference) if reference is not None else None)
    print("| video | E*warp | PSNR | SSIM |\n|---|---|---|---|")
    fmt = (lambda v: "-" if v is None else f"{v:.3f}")
    print(f"| {args.restored} | {result.ewarp_star:.3f} | {fmt(result.psnr)} | {fmt(result.ssim)} |")
    print(f"(flow: {result.flow_model}, on the {result.flow_from} frames)")
    if args.output:
        atomic_write_text(args.output, json.dumps({**result.to_dict(), "restored": str(path),
                                                   "reference": str(args.reference) if args.reference else None},
                                                  indent=2))
    return 0


# ----------------------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="daflow",
        description="DA-Flow: degradation-aware optical flow estimation with diffusion models (arXiv 2603.23499).",
    )
    parser.add_argument("--version", action="version", version=f"daflow {daflow.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in (_add_demo, _add_analyze, _add_degrade, _add_estimate, _add_evaluate, _add_evaluate_restoration,
                _add_pseudo_gt, _add_restore, _add_synth, _add_train, _add_viz):
        add(sub)
    _add_threads(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        _apply_threads(getattr(args, "threads", None))
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, OSError) as err:
        print(f"daflow {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"daflow {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
