"""daflow estimate: the flow of every consecutive pair of a video or frame folder."""

from __future__ import annotations

from daflow.cli.common import (
    add_daflow_args,
    add_input_output,
    add_model_args,
    add_range_args,
    command_parser,
    int_list,
    load_model_from_args,
    model_record,
    output_dir,
)


def _add_estimate(sub) -> None:
    from daflow.choices import FLOW_FILE_FORMATS as FORMATS

    p = command_parser(
        sub,
        "estimate",
        help="optical flow of every consecutive pair of a video or frame folder",
        description=(
            "Estimate the flow k -> k+1 of every consecutive frame pair of a video file or a folder of frames and write\n"
            "OUT/flow/<frame>.<fmt> (optionally backward flow, occlusion masks and colour-wheel pictures). The default\n"
            "model, dis-raft, refines OpenCV's DIS with a RAFT-small trained on degraded clips. DA-Flow runs on\n"
            "3-frame chunks sharing their boundary frame; --step picks the flow: 0, the single-step mode (default: one DiT\n"
            "call per chunk), one step K (the denoising stops after it), or mean, the mean over all denoising steps\n"
            "(~9x the time, the same accuracy in our measurements). Resumable: pairs whose files exist are skipped;\n"
            "every file is written atomically."
        ),
    )
    add_input_output(p, "video file or folder of frames")
    p.add_argument(
        "--model",
        default="dis-raft",
        help="dis-raft (default: the bundled DIS->RAFT refiner, the most "
        "accurate model that runs without downloads: see BENCHMARKS.md), daflow (DA-Flow: --weights FOLDER), "
        "daflow-tiny (the bundled DA-Flow-tiny), or any `evaluate` model (raft, sea-raft-m, dis, ...)",
    )
    add_model_args(
        p,
        default_iters_help="refinement iterations a level (default: dis-raft 8 on one pyramid level; on more, 2 on "
        "each coarser level and 1 on the finest; DA-Flow 20; RAFT 12)",
    )
    add_daflow_args(p)
    p.add_argument(
        "--step",
        default="0",
        help="DA-Flow: a denoising step index (default 0, the single-step mode: one "
        "DiT call per chunk, measured as accurate as the mean of steps at a ninth of the time), or mean",
    )
    p.add_argument("--format", default="flo", choices=FORMATS, help="flow file format (default flo)")
    p.add_argument("--backward", action="store_true", help="also write the backward flow k+1 -> k")
    p.add_argument("--occlusion", action="store_true", help="also write forward-backward occlusion masks")
    p.add_argument(
        "--viz",
        action="store_true",
        help="also write colour-wheel pictures, all on one colour scale (--max-flow) so that frames compare",
    )
    p.add_argument(
        "--max-flow",
        type=float,
        help="--viz: the flow magnitude (px) of full colour (default: the clip's largest per-pair 99th percentile)",
    )
    p.add_argument("--batch", type=int, default=1, help="chunks per forward pass (default 1)")
    add_range_args(p)
    p.set_defaults(func=_run_estimate)


def _run_estimate(args) -> int:
    from daflow.data.video import FrameRange, FrameSource
    from daflow.inference import estimate_video
    from daflow.models.catalog import entry, min_input_side

    entry(args.model)
    if args.max_flow is not None and args.max_flow <= 0:
        raise ValueError(f"--max-flow must be > 0 px, got {args.max_flow}")
    output_dir(args.output)
    # the input is checked before any model is built: missing, unreadable, too short or too small
    source = FrameSource(args.input)
    if (args.start, args.end, args.stride) != (0, None, 1):
        source = FrameRange(source, args.start, args.end, args.stride)
    if len(source) < 2:
        raise ValueError(f"{args.input}: {len(source)} frame(s) selected; flow needs at least 2")
    h, w = source.check_sizes()
    side = min_input_side(args.model, scale=args.scale)
    if side is not None and min(h, w) < side:
        raise ValueError(
            f"{args.input}: frames are {w}x{h} (WxH); --model {args.model} needs at least {side} px on each side"
        )
    step = args.step if args.step == "mean" else int_list(args.step, "--step")[0]
    model = load_model_from_args(args, step=step)
    print(f"daflow estimate: {model.description} on {model.device}; {len(source)} frames of {args.input}")
    settings = {
        **model_record(args),
        "iters": args.iters,
        "step": args.step,
        "corr": args.corr,
        "start": args.start,
        "end": args.end,
        "stride": args.stride,
    }
    report = estimate_video(
        model.clip,
        source,
        args.output,
        fmt=args.format,
        backward=args.backward,
        occlusion=args.occlusion,
        viz=args.viz,
        max_flow=args.max_flow,
        batch=args.batch,
        device=model.device,
        progress=not args.no_progress,
        settings=settings,
    )
    print(
        f"{report.pairs} pairs: wrote {report.written}, kept {report.skipped} existing -> {args.output} "
        f"[{report.seconds:.1f} s]"
    )
    return 0


def register(sub) -> None:
    """Add this module's command(s) to the ``daflow`` parser."""
    _add_estimate(sub)
