"""daflow evaluate: EPE and outliers on benchmarks, DA-Flow per step, no-ground-truth video scores."""

from __future__ import annotations

import json
from pathlib import Path

import daflow
from daflow.cli.common import (
    add_daflow_args,
    add_model_args,
    command_parser,
    int_list,
    load_model_from_args,
    model_record,
)


def _add_evaluate(sub) -> None:
    from daflow.choices import module_doc
    from daflow.models.catalog import help_lines

    p = command_parser(
        sub,
        "evaluate",
        help="evaluate a flow model on a benchmark (EPE, 1/3/5 px)",
        description=(
            "Evaluate a flow model on one or more datasets, clean or degraded (a mirror written by `daflow degrade`),\n"
            "and print the paper's metrics (EPE and % of pixels with error > 1, 3, 5 px) as Markdown; write JSON.\n\n"
            "Models:\n"
            + help_lines()
            + "\n\nDA-Flow's rows are its own flows (--step of `estimate`: 0, the single-step mode), the same numbers as\n"
            + "daflow.evaluate; the per-step table (Table 3) and the average over steps (Table 1) follow them."
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
        help="DA-Flow: the denoising steps to score, comma-separated, or all (default); "
        "the per-step table has one column per step, their average (Table 1) and the mean-flow ensemble",
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
    import torch

    from daflow.data.specs import parse_dataset_spec
    from daflow.eval.benchmark import add_sintel_mean, eval_sets_for, evaluate_model
    from daflow.files import atomic_write_text, check_output_file
    from daflow.shard import parse_shard

    if args.merge:
        return _merge(args)
    for flag in ("model", "data"):
        if getattr(args, flag) is None:
            raise ValueError(f"--{flag} is required (unless --merge)")
    if args.output is not None:
        check_output_file(args.output)  # before the evaluation, not after it
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
    model = load_model_from_args(args)
    steps = None if args.step == "all" else int_list(args.step, "--step")
    print(f"daflow evaluate: {model.description} on {model.device}")
    results = []
    for eval_set in (e for s in specs for e in eval_sets_for(s, model.chunk)):
        r = evaluate_model(
            model,
            eval_set,
            steps=steps,
            max_samples=args.max_pairs,
            reduce=args.reduce,
            workers=args.workers,
            progress=not args.no_progress,
            shard=shard,
        )
        results.append(r)
        print(f"{r['label']}: {r['pairs']} pairs, {r['seconds_per_pair']:.3f} s/pair")
    results = add_sintel_mean(results)
    _print_results(args.model, model, results)
    if args.output:
        record = {
            "model": args.model,
            "description": model.description,
            **model_record(args),
            "iters": model.iters if model.iters is not None else args.iters,
            "scale": args.scale,
            "reduce": args.reduce,
            "max_pairs": args.max_pairs,
            "daflow": daflow.__version__,
            "threads": torch.get_num_threads(),
            "results": results,
        }
        if model.num_steps is not None:
            record.update(step=model.step, denoise_steps=model.num_steps, seed=model.seed)
        if not shard.whole:
            record["shard"] = str(shard)
        atomic_write_text(args.output, json.dumps(record, indent=2))
        print(f"wrote {args.output}")
    return 0


def _print_results(name: str, model, results: list[dict]) -> None:
    """The Markdown tables of one evaluation: the model's own flows per dataset and the paper's Table 1 row; for
    DA-Flow also every denoising step (Table 3) and the average over steps (what Table 1 reports for DA-Flow)."""
    from daflow.eval.benchmark import markdown_table, paper_row
    from daflow.eval.stepwise import per_step_table

    label = name if model.num_steps is None else f"{name} (step {model.step})"
    table = [r for r in results if not r["label"].startswith("sintel (")]
    print(markdown_table({r["label"]: r["metrics"] for r in results}, first_column=f"{label} on"))
    print()
    print(paper_row(label, table))
    stepwise = [r for r in results if "per_step" in r]
    if stepwise:
        print()
        print(per_step_table(stepwise))
        print()
        print(paper_row(f"{name} (average over steps)", [{**r, "metrics": r["average"]} for r in stepwise]))


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
    print(markdown_table({r["label"]: r["metrics"] for r in results}, first_column=f"{record['model']} on"))
    if any("per_step" in r for r in results):
        print()
        print(per_step_table([r for r in results if "per_step" in r]))
    atomic_write_text(args.output, json.dumps(record, indent=2))
    print(f"merged {len(args.merge)} parts -> {args.output}")
    return 0


def _evaluate_video(args, specs) -> int:
    """``--data video:PATH[?clean=CLEAN]``: warping error and FB consistency, zero flow and DIS as reference rows."""
    import torch

    from daflow.eval.video_quality import evaluate_video, markdown, video_pairs
    from daflow.files import atomic_write_text

    pairs = [video_pairs(s.target, **s.options) for s in specs]  # inputs checked first
    if args.max_pairs is not None and args.max_pairs < 1:
        raise ValueError(f"--max-pairs must be >= 1, got {args.max_pairs}")
    if args.model == "dis":  # DIS is a reference row already
        est, device, label = None, "cpu", args.model
    else:
        step = 0 if args.step == "all" else int_list(args.step, "--step")[0]
        model = load_model_from_args(args, step=step)
        est, device = model.clip, model.device
        label = args.model if model.num_steps is None else f"{args.model} (step {step})"
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
                {
                    "model": args.model,
                    **model_record(args),
                    "daflow": daflow.__version__,
                    "threads": torch.get_num_threads(),
                    "results": results,
                },
                indent=2,
            ),
        )
        print(f"wrote {args.output}")
    return 0


def register(sub) -> None:
    """Add this module's command(s) to the ``daflow`` parser."""
    _add_evaluate(sub)
