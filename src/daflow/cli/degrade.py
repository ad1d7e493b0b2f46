"""daflow degrade: degraded (LQ) mirrors of datasets, videos and frame folders."""

from __future__ import annotations

import time
from pathlib import Path

from daflow.cli.common import add_progress_arg, add_range_args


def _add_degrade(sub) -> None:
    from daflow.choices import MIRROR_KINDS as KINDS
    from daflow.data.degrade.config import DEGRADATION_PRESETS

    p = sub.add_parser(
        "degrade",
        help="build a degraded (LQ) mirror of a dataset, a video or a frame folder",
        description=(
            "Synthesise LQ frames with the RealBasicVSR pipeline (Real-ESRGAN second-order degradation per frame, "
            "whole-clip video compression) and write a mirror of the input layout: same file names and sizes, ground "
            "truth symlinked (or copied), manifest.json with every sampled parameter per clip. Resumable: finished "
            "clips are skipped; frames are written atomically. KIND: frames (one folder = one clip), video (one file; "
            "frames written as OUT/frame_000000.png, ...), sintel, spring, tartanair, youhq. --start/--end/--stride pick "
            "frames of a video or frame folder."
        ),
    )
    p.add_argument("kind", choices=KINDS, help="input layout")
    p.add_argument("root", type=Path, help="input dataset root, frame folder or video file")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder (must not be inside the input)")
    p.add_argument(
        "--preset",
        choices=sorted(DEGRADATION_PRESETS),
        default="realbasicvsr",
        help="degradation preset (default realbasicvsr, the paper's)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="run seed; each clip's seed derives from it and the clip's path (default 0)"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="parallel worker processes (default 1): one clip each, or, for fewer clips than workers (one long folder "
        "or video), the frames of a clip; the output bytes do not depend on it",
    )
    p.add_argument(
        "--max-clip-frames", type=int, default=64, help="longer sequences are split into balanced chunks (default 64)"
    )
    p.add_argument("--copy-gt", action="store_true", help="copy ground truth instead of symlinking it")
    p.add_argument(
        "--preview",
        action="store_true",
        help="write OUT/.daflow-degrade/preview.png: HQ | LQ | difference of up to 8 clips (kept out of the frames)",
    )
    p.add_argument(
        "--write-clean",
        action="store_true",
        help="frames/video: also write the clean frames of the same range and names to OUT/clean/, for `daflow "
        "evaluate --data video:OUT?clean=OUT/clean`",
    )
    add_progress_arg(p)
    p.add_argument(
        "--shard",
        metavar="K/N",
        help="degrade only every N-th clip starting at clip K (0-based), for spreading a dataset over machines; the "
        "shards write exactly one run's mirror, and manifest.json appears once every clip is done (run the command "
        "once more without --shard at the end)",
    )
    add_range_args(p)
    p.set_defaults(func=_run_degrade)


def _run_degrade(args) -> int:
    from daflow.data.degrade.mirror import degrade_tree
    from daflow.shard import parse_shard

    if args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    shard = parse_shard(args.shard)
    t0 = time.perf_counter()
    manifest = degrade_tree(
        args.kind,
        args.root,
        args.output,
        preset=args.preset,
        seed=args.seed,
        workers=args.workers,
        max_clip_frames=args.max_clip_frames,
        copy_gt=args.copy_gt,
        preview=args.preview,
        progress=not args.no_progress,
        frame_range=(args.start, args.end, args.stride),
        shard=shard,
        write_clean=args.write_clean,
    )
    if "pending" in manifest:
        print(
            f"shard {shard}: its clips are done in {args.output}; {manifest['pending']} clip(s) of other shards pending "
            f"(manifest.json is written by the run that finds every clip done) [{time.perf_counter() - t0:.1f} s]"
        )
        return 0
    n = sum(len(c["frames"]) for c in manifest["clips"])
    print(
        f"{len(manifest['clips'])} clips, {n} frames ({args.preset}, seed {args.seed}) in {args.output} "
        f"[{time.perf_counter() - t0:.1f} s]; parameters in {args.output / 'manifest.json'}"
    )
    if args.preview:
        from daflow.data.degrade.mirror import PREVIEW

        print(f"preview: {args.output / PREVIEW}")
    return 0


def register(sub) -> None:
    """Add this module's command(s) to the ``daflow`` parser."""
    _add_degrade(sub)
