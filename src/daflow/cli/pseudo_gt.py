"""daflow pseudo-gt: teacher flow labels for every clip (paper §4.4)."""

from __future__ import annotations

from pathlib import Path

from daflow.cli.common import add_model_args, load_model_from_args, output_dir


def _add_pseudo_gt(sub) -> None:
    from daflow.choices import LABEL_FORMATS

    p = sub.add_parser(
        "pseudo-gt",
        help="teacher flow labels for every consecutive pair of every clip (paper §4.4)",
        description=(
            "Run the teacher on the HQ frames of every clip below CLIPS (video files or frame folders, e.g. YouHQ) and "
            "write the flow of every consecutive pair to OUT/<clip>/<frame stem>.<fmt>. The paper's teacher is SEA-RAFT "
            "in its spring-M configuration (half resolution) with Tartan-C-T-TSKH-spring540x960-M.pth, 20 iterations "
            "for training labels (4 for the analysis). Resumable: existing labels are kept."
        ),
    )
    p.add_argument("clips", type=Path, help="a folder of clips, one video file, or one frame folder")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder for the labels")
    p.add_argument("--teacher", default="sea-raft-m", help="teacher model (default sea-raft-m; any `evaluate` model)")
    p.add_argument("--format", default="flo", choices=LABEL_FORMATS, help="label file format (default flo)")
    p.add_argument("--batch-size", type=int, default=4, help="pairs per forward pass (default 4)")
    p.add_argument(
        "--shard",
        metavar="K/N",
        help="label only every N-th clip starting at clip K (0-based), to spread the work over machines; the shards "
        "write exactly the labels of one run",
    )
    add_model_args(p, default_iters_help="teacher iterations (default 20, the paper's training labels)")
    p.set_defaults(func=_run_pseudo_gt)


def _run_pseudo_gt(args) -> int:
    from daflow.models.precision import dtype_name, flow_dtype
    from daflow.shard import parse_shard
    from daflow.train.pseudo_gt import write_pseudo_gt

    shard = parse_shard(args.shard)
    output_dir(args.output)
    if args.iters is None:
        args.iters = 20
    if args.scale is None and args.teacher.startswith("sea-raft"):
        args.scale = -1  # the spring-M configuration the paper names (App. A)
    flow_model = load_model_from_args(args, args.teacher)
    if flow_model.pairs is None:
        raise ValueError(f"--teacher {args.teacher}: the teacher must be a pairwise model (RAFT, SEA-RAFT, DIS, ...)")
    model = flow_model.pairs
    print(f"daflow pseudo-gt: teacher {model.description} on {model.device}")
    settings = {
        "iters": args.iters,
        "scale": args.scale,
        "weights": str(args.weights) if args.weights else None,
        "dtype": dtype_name(flow_dtype(args.dtype)),
    }
    report = write_pseudo_gt(
        args.clips,
        args.output,
        model,
        fmt=args.format,
        batch_size=args.batch_size,
        progress=not args.no_progress,
        settings=settings,
        shard=shard,
    )
    print(
        ("" if shard.whole else f"shard {shard}: ")
        + f"{report.clips} clips, {report.pairs} pairs: wrote {report.written}, kept {report.skipped} existing -> {args.output}"
    )
    return 0


def register(sub) -> None:
    """Add this module's command(s) to the ``daflow`` parser."""
    _add_pseudo_gt(sub)
