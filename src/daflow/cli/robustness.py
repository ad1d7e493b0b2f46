"""daflow robustness: flow models under corruptions at five severities (error against severity, robustness score)."""

from __future__ import annotations

from pathlib import Path

from daflow.cli.common import add_device_arg, add_progress_arg, command_parser, int_list, output_dir, resolve_device


def _add_robustness(sub) -> None:
    from daflow.choices import module_doc

    p = command_parser(
        sub,
        "robustness",
        help="a corruption x severity benchmark of flow models (noise, blur, colour, quality, weather, video)",
        description=(
            "Corrupt every clip of each --data spec with each corruption at each severity (one draw per clip, the same\n"
            "at every frame and severity; docs/robustness.md), run every --model on it and score EPE and 1/3/5 px\n"
            "outliers against the ground truth, and the robustness score: how far the model's flow moves from its own\n"
            "flow on the clean frames. Writes OUT/robustness.json (tidy rows), robustness.md, robustness.png (error\n"
            "against severity per corruption group) and examples.png. Resumable row by row; --shard K/N runs fill one\n"
            "OUT, and the run that finds every row there (run once more without --shard) writes the results.\n\n"
            + module_doc("daflow.eval.robustness").split("\n\n")[1]
        ),
    )
    p.add_argument("--model", action="append", required=True, help="a model name or weights path; repeatable")
    p.add_argument(
        "--data",
        action="append",
        required=True,
        metavar="DATASET_SPEC",
        help="a dataset with ground truth (EPE), or video:PATH[?clean=CLEAN] scored by the warping error on the clean "
        "frames (as `daflow evaluate` scores video); repeatable",
    )
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    p.add_argument("--corruptions", help="comma-separated names (default: all; see docs/robustness.md)")
    p.add_argument("--severities", default="1,2,3,4,5", help="comma-separated, each 1..5 (default all five)")
    p.add_argument("--reference", help="the model the summary is relative to (default: the first --model)")
    p.add_argument("--seed", type=int, default=0, help="seed of the corruptions' random draws (default 0)")
    p.add_argument("--max-samples", type=int, help="the first N samples of each dataset (quick checks)")
    p.add_argument("--shard", metavar="K/N", help="compute only every N-th row from K (0-based)")
    add_device_arg(p)
    add_progress_arg(p)
    p.set_defaults(func=_run_robustness)


def _run_robustness(args) -> int:
    import json

    from daflow.api import load_model
    from daflow.data.corruptions import CORRUPTIONS, check_names
    from daflow.data.specs import parse_dataset_spec
    from daflow.eval.benchmark import eval_sets_for
    from daflow.eval.robustness import examples, markdown, plot, run_robustness, video_set
    from daflow.files import atomic_write_text, claim_run
    from daflow.shard import parse_shard

    corruptions = list(CORRUPTIONS) if not args.corruptions else [c.strip() for c in args.corruptions.split(",")]
    severities = int_list(args.severities, "--severities")
    check_names(corruptions, severities)
    if args.reference and args.reference not in args.model:
        raise ValueError(f"--reference {args.reference!r} is not one of the --model values {args.model}")
    shard = parse_shard(args.shard)
    out = output_dir(args.output)
    device = resolve_device(args.device)
    specs = [parse_dataset_spec(s) for s in args.data]  # checked before any model is loaded
    videos = [s.kind == "video" for s in specs]
    if any(videos) and not all(videos):
        raise ValueError(
            "--data video:... (scored by warping error) cannot be mixed with ground-truth specs in one run"
        )
    models = {m: load_model(m, device=device) for m in dict.fromkeys(args.model)}

    def cut(spec, chunk: int) -> list:
        return [video_set(spec, chunk)] if spec.kind == "video" else eval_sets_for(spec, chunk)

    sets = {m: [e for spec in specs for e in cut(spec, model.chunk)] for m, model in models.items()}
    settings = {"models": list(models), "data": args.data, "corruptions": corruptions, "severities": severities}
    # rows are kept per model, dataset, corruption and severity: more models or corruptions extend a run; other data,
    # seed or sample count would change the rows already there
    record_keys = ("data", "seed", "max_samples")
    claim = {**settings, "seed": args.seed, "max_samples": args.max_samples}
    claim_run(out / "robustness_settings.json", claim, keys=record_keys, what="a robustness run")
    record = run_robustness(
        models,
        sets,
        out,
        corruptions=corruptions,
        severities=severities,
        seed=args.seed,
        max_samples=args.max_samples,
        shard=shard,
        progress=not args.no_progress,
    )
    if record is None:
        print(f"shard {shard}: its rows are in {out / 'rows'}; run once more without --shard to write the results")
        return 0
    record = {**settings, **record}
    atomic_write_text(out / "robustness.json", json.dumps(record, indent=1))
    table = markdown(record, args.reference)
    atomic_write_text(out / "robustness.md", table + "\n")
    plot(record, out / "robustness.png")
    first = next(iter(sets.values()))[0].dataset[0].frames
    examples(first, corruptions, out / "examples.png", seed=args.seed)
    print(table)
    print(f"\nwrote {out / 'robustness.json'}, robustness.md, robustness.png, examples.png")
    return 0


def register(sub) -> None:
    """Add this module's command(s) to the ``daflow`` parser."""
    _add_robustness(sub)
