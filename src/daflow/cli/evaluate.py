"""daflow evaluate: EPE and outliers on benchmarks, DA-Flow per step, no-ground-truth video scores."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import daflow
from daflow.cli.common import (
    DAFLOW_NAMES,
    add_daflow_args,
    add_model_args,
    build_daflow,
    build_model,
    int_list,
    model_record,
)


def _add_evaluate(sub) -> None:
    from daflow.choices import module_doc
    from daflow.models.catalog import FLOW_MODELS

    p = sub.add_parser(
        "evaluate",
        help="evaluate a flow model on a benchmark (EPE, 1/3/5 px)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Evaluate a flow model on one or more datasets, clean or degraded (a mirror written by `daflow degrade`),\n"
            "and print the paper's metrics (EPE and % of pixels with error > 1, 3, 5 px) as Markdown; write JSON.\n\n"
            "Models:\n"
            + "\n".join(f"  {k:11s} {v.description}" for k, v in FLOW_MODELS.items())
            + "\n  daflow      DA-Flow: --weights FOLDER from `daflow train flow` (per-step table, Table 1-3 layouts)"
            + "\n  daflow-tiny DA-Flow-tiny, bundled (trained by `daflow train recipe tiny`)"
            + "\n\n\nDATASET_SPEC is KIND:TARGET[?key=value&...]:\n"
            + module_doc("daflow.data.specs").split("\n\n", 2)[2]
        ),
    )
    p.add_argument("--model", help="model name (see above), daflow (--weights FOLDER) or daflow-tiny (bundled)")
    p.add_argument("--data", action="append", metavar="DATASET_SPEC", help="dataset spec; repeatable")
    add_model_args(
        p,
        default_iters_help="refinement iterations (default: RAFT 12, the paper's M; SEA-RAFT its preset's; "
        "DA-Flow 20, the paper's inference setting)",
    )
    add_daflow_args(p)
    p.add_argument(
        "--step",
        "--steps",
        dest="step",
        default="all",
        help="DA-Flow: the denoising steps to score, comma-separated, or all (default; --steps is the old spelling); "
        "the table has one column per step, their average (Table 1) and the mean-flow ensemble",
    )
    p.add_argument("--max-pairs", type=int, help="evaluate only the first N pairs of each dataset (quick checks)")
    p.add_argument(
        "--reduce",
        default="image",
        choices=("image", "pixel"),
        help="image: mean over images of per-image means (paper); pixel: pooled over all pixels",
    )
    p.add_argument("--workers", type=int, default=0, help="data-loading worker processes (default 0)")
    p.add_argument("-o", "--output", type=Path, help="JSON file for the results (default: print only)")
    p.add_argument(
        "--shard",
        metavar="K/N",
        help="evaluate only every N-th pair (DA-Flow: chunk) starting at K (0-based) and write its per-image sums to "
        "-o PART.json; merge the N parts with --merge (the same metrics as one run, bit for bit)",
    )
    p.add_argument(
        "--merge",
        nargs="+",
        type=Path,
        metavar="PART",
        help="combine the -o files of the shards 0..N-1 of one evaluation into -o OUT.json (no --model/--data)",
    )
    p.set_defaults(func=_run_evaluate)


def _run_evaluate(args) -> int:
    from daflow.data.specs import build_eval_sets, parse_dataset_spec
    from daflow.eval.benchmark import (
        add_sintel_mean,
        evaluate_pairs,
        markdown_table,
        paper_row,
    )
    from daflow.files import atomic_write_text
    from daflow.shard import parse_shard

    if args.merge:
        return _merge(args)
    for flag in ("model", "data"):
        if getattr(args, flag) is None:
            raise ValueError(f"--{flag} is required (unless --merge)")
    shard = parse_shard(args.shard)
    if not shard.whole and args.output is None:
        raise ValueError("--shard needs -o PART.json: the part's per-image sums are what --merge combines")
    specs = [parse_dataset_spec(s) for s in args.data]  # all specs checked before any model is built
    videos = [s for s in specs if s.kind == "video"]
    if videos:
        if not shard.whole:
            raise ValueError("--shard applies to benchmark datasets, not to --data video:...")
        if len(videos) != len(specs):
            raise ValueError("--data video:... (no ground truth) cannot be mixed with benchmark specs in one run")
        return _evaluate_video(args, videos)
    if args.model in DAFLOW_NAMES:
        return _evaluate_daflow(args, specs, shard)
    sets = [e for s in specs for e in build_eval_sets(s)]
    model = build_model(args, args.model)
    print(f"daflow evaluate: {model.description} on {model.device}")
    results = []
    for eval_set in sets:
        r = evaluate_pairs(
            model,
            eval_set,
            max_samples=args.max_pairs,
            reduce=args.reduce,
            workers=args.workers,
            progress=not args.no_progress,
            shard=shard,
        )
        results.append(r)
        print(f"{r['label']}: {r['pairs']} pairs, {r['seconds_per_pair']:.3f} s/pair")
    results = add_sintel_mean(results)
    print(markdown_table({r["label"]: r["metrics"] for r in results}, first_column=f"{args.model} on"))
    print()
    print(paper_row(args.model, [r for r in results if not r["label"].startswith("sintel (")]))
    if args.output:
        record = {
            "model": args.model,
            "description": model.description,
            "weights": str(args.weights) if args.weights else None,
            "random_init": model.random_init,
            "iters": args.iters,
            "scale": args.scale,
            "reduce": args.reduce,
            "max_pairs": args.max_pairs,
            "daflow": daflow.__version__,
            "results": results,
        }
        if not shard.whole:
            record["shard"] = str(shard)
        atomic_write_text(args.output, json.dumps(record, indent=2))
        print(f"wrote {args.output}")
    return 0


def _merge(args) -> int:
    """``--merge PART.json ... -o OUT.json``: one evaluation's record from its shards'."""
    from daflow.eval.benchmark import markdown_table, merge_records
    from daflow.eval.stepwise import per_step_table
    from daflow.files import atomic_write_text, read_json

    if args.output is None:
        raise ValueError("--merge needs -o OUT.json")
    if args.model or args.data or args.shard:
        raise ValueError("--merge takes only the parts and -o (their settings are in the parts)")
    record = merge_records([read_json(p, what="evaluation part") for p in args.merge])
    results = record["results"]
    if "per_step" in results[0]:
        print(per_step_table(results))
    else:
        print(markdown_table({r["label"]: r["metrics"] for r in results}, first_column=f"{record['model']} on"))
    atomic_write_text(args.output, json.dumps(record, indent=2))
    print(f"merged {len(args.merge)} parts -> {args.output}")
    return 0


def _evaluate_daflow(args, specs, shard) -> int:
    from daflow.data.base import CHUNKS
    from daflow.data.specs import build_eval_sets
    from daflow.eval.benchmark import add_sintel_mean, markdown_table, paper_row
    from daflow.eval.stepwise import evaluate_daflow, per_step_table
    from daflow.files import atomic_write_text

    steps = None if args.step == "all" else int_list(args.step, "--step")
    sets = [e for s in specs for e in build_eval_sets(s, num_frames=3, stride=CHUNKS)]
    model = build_daflow(args)
    iters = args.iters or 20
    print(
        f"daflow evaluate: DA-Flow ({model.config.raft} RAFT, blocks {list(model.config.blocks)}), {iters} iterations, "
        f"{args.denoise_steps}-step schedule, 3-frame chunks, on {model.device}"
    )
    results = []
    for eval_set in sets:
        r = evaluate_daflow(
            model,
            eval_set,
            steps=steps,
            num_steps=args.denoise_steps,
            iters=iters,
            seed=args.seed,
            max_samples=args.max_pairs,
            reduce=args.reduce,
            progress=not args.no_progress,
            shard=shard,
        )
        results.append(r)
        print(f"{r['label']}: {r['pairs']} pairs, {r['seconds_per_pair']:.3f} s/pair (all requested steps)")
    print(per_step_table(results))
    print()
    summary = add_sintel_mean(
        [{"label": r["label"], "spec": r["spec"], "metrics": r["average"], "pairs": r["pairs"]} for r in results]
    )
    print(markdown_table({r["label"]: r["metrics"] for r in summary}, first_column="DA-Flow (average over steps) on"))
    print()
    print(paper_row("DA-Flow", [r for r in summary if not r["label"].startswith("sintel (")]))
    if args.output:
        record = {
            "model": "daflow",
            "weights": str(args.weights) if args.weights else None,
            "random_init": args.random_init,
            "iters": iters,
            "denoise_steps": args.denoise_steps,
            "seed": args.seed,
            "reduce": args.reduce,
            "max_chunks": args.max_pairs,
            "daflow": daflow.__version__,
            "results": results,
        }
        if not shard.whole:
            record["shard"] = str(shard)
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
        step = 0 if args.step == "all" else int_list(args.step, "--step")[0]
        model = build_daflow(args)
        est, device = (
            daflow_estimator(model, step=step, num_steps=args.denoise_steps, iters=args.iters or 20, seed=args.seed),
            model.device,
        )
        label = f"{args.model} (step {step})"
    elif args.model == "dis":  # DIS is a reference row already
        est, device, label = None, "cpu", args.model
    else:
        flow_model = build_model(args, args.model)
        est, device, label = pairwise(flow_model), flow_model.device, args.model
    results = []
    for spec, vp in zip(specs, pairs):
        r = evaluate_video(
            {label: est} if est is not None else {},
            vp,
            max_pairs=args.max_pairs,
            device=device,
            progress=not args.no_progress,
        )
        r["spec"] = str(spec)
        results.append(r)
        print(markdown(r, title=f"{spec}"))
        print()
    if args.output:
        atomic_write_text(
            args.output,
            json.dumps(
                {"model": args.model, **model_record(args), "daflow": daflow.__version__, "results": results}, indent=2
            ),
        )
        print(f"wrote {args.output}")
    return 0


def register(sub) -> None:
    """Add this module's command(s) to the ``daflow`` parser."""
    _add_evaluate(sub)
