"""daflow analyze: zero-shot correspondence of diffusion features, layer x step (paper §4.3)."""

from __future__ import annotations

import time
from pathlib import Path

import daflow
from daflow.cli.common import add_denoise_steps, add_diffusion_args, build_backbone, command_parser, output_dir


def _add_analyze(sub) -> None:
    from daflow.choices import module_doc

    p = command_parser(
        sub,
        "analyze",
        help="zero-shot correspondence of diffusion features, layer x denoising step (paper §4.3)",
        description=(
            "Run the lifted DiT4SR's 10-step denoising on F-frame clips (default 3, as in training; windows share no\n"
            "pair), turn the query of frame k and the key of frame k+1 of every block at every step into a flow by the\n"
            "dot-product cost volume (Eq. 12) and soft-argmax, and measure its EPE against the clips' reference flow\n"
            "(exact ground truth, or teacher pseudo ground truth on the HQ frames, as the paper does on YouHQ40).\n"
            "Writes OUT/analysis.json, analysis.md (block x step tables) and the paper's figures: top_layers.png\n"
            "(Fig. 3a / 8a), top4_steps.png (Fig. 3b / 8b), all_layers.png (Fig. 7) and a heatmap per feature kind.\n\n"
            "The paper's protocol: degrade YouHQ40 (daflow degrade youhq), label its HQ frames with SEA-RAFT\n"
            "(daflow pseudo-gt --iters 4), then\n"
            "  daflow analyze --data labeled:YouHQ40-LQ?labels=YouHQ40-pgt --dit4sr dit4sr_q --vae sd3.5 -o out\n\n"
            "DATASET_SPEC is KIND:TARGET[?key=value&...]:\n" + module_doc("daflow.data.specs").split("\n\n", 2)[2]
        ),
    )
    p.add_argument("--data", required=True, action="append", metavar="DATASET_SPEC", help="dataset spec; repeatable")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    add_diffusion_args(p)
    p.add_argument(
        "--label",
        default=None,
        help="name of this model in tables and figures (default: Lifting, or Random with --random-init)",
    )
    p.add_argument("--frames", type=int, default=3, help="frames per clip (default 3)")
    add_denoise_steps(p)
    p.add_argument(
        "--features",
        default="qk",
        choices=("qk", "adanorm", "both"),
        help="qk: query/key (paper); adanorm: post-AdaNorm hidden states (App. B.2); both",
    )
    p.add_argument(
        "--attention",
        default="attn",
        choices=("attn", "attn2"),
        help="which attention's Q/K: the joint attn (default) or the dual attn2 of blocks 0-12",
    )
    p.add_argument("--blocks", default="all", help="comma-separated 0-based blocks, or all (default)")
    p.add_argument("--argmax", default="soft", choices=("soft", "hard"), help="soft-argmax (paper) or hard argmax")
    p.add_argument(
        "--temperature",
        type=float,
        default=1.0,
        help="soft-argmax temperature dividing the dot products (default 1: the literal Eq. 12; the paper gives none)",
    )
    p.add_argument("--max-clips", type=int, help="analyse only the first N clips of each dataset")
    p.add_argument(
        "--compare",
        type=Path,
        action="append",
        default=[],
        metavar="ANALYSIS_JSON",
        help="add an earlier run's analysis.json to the figures (e.g. Baseline vs Lifting); repeatable",
    )
    p.set_defaults(func=_run_analyze)


def _run_analyze(args) -> int:
    from daflow.data.specs import build_eval_sets, parse_dataset_spec
    from daflow.eval.analysis import run_analysis
    from daflow.eval.report import load_series, write_analysis

    if args.frames < 2:
        raise ValueError(f"--frames must be at least 2, got {args.frames}")
    if args.denoise_steps < 1:
        raise ValueError(f"--denoise-steps must be at least 1, got {args.denoise_steps}")
    if args.max_clips is not None and args.max_clips < 1:
        raise ValueError(f"--max-clips must be at least 1, got {args.max_clips}")
    try:
        blocks = None if args.blocks == "all" else [int(b) for b in args.blocks.split(",") if b.strip()]
    except ValueError:
        raise ValueError(f"--blocks must be comma-separated integers or all, got {args.blocks!r}") from None
    output_dir(args.output)
    compare = [s for path in args.compare for s in load_series(path)]
    specs = [parse_dataset_spec(s) for s in args.data]
    sets = [e for s in specs for e in build_eval_sets(s, num_frames=args.frames, stride=args.frames - 1)]
    backbone = build_backbone(args)
    label = args.label or ("Random" if args.random_init else "Lifting")
    features = ("qk", "adanorm") if args.features == "both" else (args.features,)
    samples = _concat([e.dataset for e in sets], args.max_clips)
    print(
        f"daflow analyze: {len(samples)} clips of {args.frames} frames from {', '.join(e.label for e in sets)}; "
        f"{args.denoise_steps} steps on {backbone.device}"
    )
    t0 = time.perf_counter()
    tables = run_analysis(
        backbone,
        samples,
        features=features,
        attention=args.attention,
        blocks=blocks,
        steps=args.denoise_steps,
        mode=args.argmax,
        temperature=args.temperature,
        seed=args.seed,
        progress=not args.no_progress,
        label="analyze",
    )
    meta = {
        "data": [str(s) for s in specs],
        "frames": args.frames,
        "steps": args.denoise_steps,
        "argmax": args.argmax,
        "temperature": args.temperature,
        "seed": args.seed,
        "dit4sr": str(args.dit4sr) if args.dit4sr else None,
        "vae": str(args.vae) if args.vae else None,
        "random_init": args.random_init,
        "preset": args.preset if args.random_init else None,
        "seconds": round(time.perf_counter() - t0, 2),
        "daflow": daflow.__version__,
    }
    written = write_analysis(args.output, label, tables, meta=meta, compare=compare)
    for t in tables:
        means = t.mean_epe()
        best = t.ranking()[:4]
        print(
            f"{label} {t.name}: best blocks {best} (step-averaged EPE "
            + ", ".join(f"{means[b]:.3f}" for b in best)
            + f") over {t.pairs} pairs"
        )
    print(f"wrote {len(written)} files to {args.output} in {time.perf_counter() - t0:.1f} s")
    return 0


def _concat(datasets, max_per_set):
    """The clips of several datasets (the first ``max_per_set`` of each) as one sequence."""
    import torch

    parts = [
        d if max_per_set is None else torch.utils.data.Subset(d, range(min(max_per_set, len(d)))) for d in datasets
    ]
    return torch.utils.data.ConcatDataset(parts)


def register(sub) -> None:
    """Add this module's command(s) to the ``daflow`` parser."""
    _add_analyze(sub)
