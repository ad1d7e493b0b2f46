"""daflow train refine and daflow train recipe: the runs that make the bundled models (the default flow model, the
tiny recipe's DA-Flow-tiny and RAFT*-tiny, the tiny restorer)."""

from __future__ import annotations

from pathlib import Path

from daflow.cli.common import add_device_arg, add_progress_arg, command_parser, output_dir, resolve_device


def add_train_refine(stages) -> None:
    p = command_parser(
        stages,
        "refine",
        help="the bundled default flow model: RAFT-small refining DIS, trained on degraded clips",
        description=(
            "Train the DIS->RAFT refiner (daflow.models.refine) that ships as the default flow model: N mixture clips\n"
            "(sizes 256x256..384x512, sub-pixel to 1/8-width motion, static scenes, every bundled photo and procedural\n"
            "textures, RealBasicVSR / mild / severe / real-codec degradations) are rendered into RUN/mixture with DIS on\n"
            "their LQ pairs, then RAFT-small learns to correct DIS. Resumable: finished clips and checkpoints are kept.\n"
            "The shipped weights: `daflow train refine -o RUN --bundle-into src/daflow/weights` (about 1.5 h on 2 cores)."
        ),
    )
    p.add_argument("-o", "--output", type=Path, required=True, help="run folder (RUN/mixture holds the clips)")
    p.add_argument(
        "--preset",
        default="default",
        choices=("default", "tiny"),
        help="training settings (tiny: a few steps on 64x64 crops, for tests)",
    )
    p.add_argument("--clips", type=int, default=1500, help="mixture clips to render (default 1500)")
    p.add_argument("--mixture", default=None, choices=("default", "tiny"), help="mixture preset (default: as --preset)")
    p.add_argument(
        "--init",
        type=Path,
        help="RAFT-small weights to start from (default: the bundled RAFT*-tiny; with --daflow the bundled dis-raft)",
    )
    p.add_argument(
        "--daflow",
        metavar="PRESET",
        help="train DA-Flow of this preset (small) on the refiner instead: the hybrid surgery on --init (equal to it "
        "before training), the DiT of --dit4sr/--vae frozen (default: the bundled restorer's), its DPT heads and "
        "hybrid RAFT trained on the same clips; RUN/model is a DA-Flow folder",
    )
    p.add_argument("--dit4sr", type=Path, help="with --daflow: the DiT4SR transformer folder of its backbone")
    p.add_argument("--vae", type=Path, help="with --daflow: the VAE folder of its backbone")
    p.add_argument(
        "--random-dit",
        action="store_true",
        help="with --daflow: the DiT at seeded random weights of the same shape (the control for the features)",
    )
    p.add_argument("--steps", type=int, help="optimisation steps (default 2500)")
    p.add_argument("--lr", type=float, help="peak learning rate of the one-cycle schedule (default 4e-4)")
    p.add_argument(
        "--coarse-prob",
        type=float,
        help="share of steps whose batch is area-downsampled by 2, as the coarser levels of the coarse-to-fine "
        "inference see their frames (default 0; crops must then be multiples of 16, at least 128)",
    )
    p.add_argument("--workers", type=int, default=2, help="processes rendering the clips (default 2)")
    p.add_argument(
        "--bundle-into",
        type=Path,
        help="after training, copy the model with its provenance into this "
        "folder (src/daflow/weights ships it with the package)",
    )
    add_device_arg(p)
    p.add_argument("--seed", type=int, default=0, help="run seed (default 0)")
    add_progress_arg(p)
    p.set_defaults(func=_run_train_refine)


def _run_train_refine(args) -> int:
    import dataclasses

    from daflow.models.bundled import bundled_path
    from daflow.train.mixture import build_cache
    from daflow.train.refine import REFINE_PRESETS, train_refiner

    if args.clips < 1:
        raise ValueError(f"--clips must be >= 1, got {args.clips}")
    if not args.daflow and (args.dit4sr or args.vae or args.random_dit):
        raise ValueError("--dit4sr, --vae and --random-dit choose DA-Flow's backbone: they need --daflow")
    init = args.init or bundled_path("dis-raft" if args.daflow else "raft-star-tiny") / "raft.safetensors"
    hybrid = info = None
    if args.daflow:
        from daflow.train.refine import hybrid_refiner

        hybrid, info = hybrid_refiner(
            args.daflow, init, dit4sr=args.dit4sr, vae=args.vae, random_dit=args.random_dit, seed=args.seed
        )
    out = output_dir(args.output)
    given = {"steps": args.steps, "lr": args.lr, "coarse_prob": args.coarse_prob}
    overrides = {"seed": args.seed} | {k: v for k, v in given.items() if v is not None}
    config = dataclasses.replace(REFINE_PRESETS[args.preset], **overrides)
    cache = build_cache(
        out / "mixture",
        args.clips,
        config=args.mixture or args.preset,
        seed=args.seed,
        workers=args.workers,
        progress=not args.no_progress,
    )
    summary = train_refiner(
        cache,
        out,
        config,
        init=init,
        hybrid=hybrid,
        hybrid_info=info,
        device=resolve_device(args.device),
        progress=not args.no_progress,
    )
    print(
        f"steps {summary['start']} -> {summary['steps']}: loss {summary['first_loss']} -> {summary['last_loss']}; "
        f"model in {out / 'model'}"
    )
    if args.bundle_into:
        from daflow.recipe.bundle import bundle_refiner

        command = (
            f"daflow train refine -o {out} --preset {args.preset} --clips {args.clips} --steps {config.steps} "
            f"--seed {args.seed}"
            + (f" --lr {args.lr}" if args.lr is not None else "")
            + (f" --coarse-prob {args.coarse_prob}" if args.coarse_prob is not None else "")
            + (f" --init {args.init}" if args.init else "")
            + (f" --daflow {args.daflow}" if args.daflow else "")
            + (f" --dit4sr {args.dit4sr} --vae {args.vae}" if args.dit4sr else "")
            + (" --random-dit" if args.random_dit else "")
        )
        what = "DA-Flow-small" if args.daflow else "the DIS->RAFT refiner"
        print(f"bundled {what} into {bundle_refiner(out, args.bundle_into, command=command)}")
    return 0


def add_train_recipe(stages) -> None:
    from daflow.choices import module_doc

    p = command_parser(
        stages,
        "recipe",
        help="every stage of the paper at small size on a CPU (the tiny recipe), or the tiny restorer",
        description=(
            "Run the tiny recipe into RUN_DIR: synthetic data with exact ground truth and its degraded mirror, stage 0\n"
            "(VAE, per-frame DiT4SR), stage 1 (lifting), the RAFT teacher and baseline, pseudo ground truth, the\n"
            "zero-shot layer analysis, stage 2 (pseudo and exact labels), RAFT* and Baseline*. Resumable: finished\n"
            "stages are skipped and every trainer resumes from its last checkpoint.\n\n"
            + module_doc("daflow.recipe.run").split("\n\n")[2]
        ),
    )
    p.add_argument(
        "preset",
        choices=("tiny", "smoke", "restore", "restore-smoke", "paper"),
        help="tiny: the real budget; smoke: every stage for a few steps; restore: the tiny restorer of "
        "`daflow restore` (data, a wider VAE, per-frame DiT, lifting); paper: the paper-scale plan (its inputs "
        "below; --dry-run checks them and prints the stages, commands and expected GPU-hours)",
    )
    p.add_argument("-o", "--output", type=Path, required=True, help="run folder")
    p.add_argument("--only", action="append", help="run only this stage (repeatable)")
    p.add_argument(
        "--bundle-into",
        type=Path,
        help="after the run, copy DA-Flow-tiny and RAFT*-tiny with their "
        "provenance into this folder (src/daflow/weights ships them with the package)",
    )
    p.add_argument(
        "--device", default="auto", help="torch device for every stage (default auto: cuda if available, else cpu)"
    )
    add_progress_arg(p)
    g = p.add_argument_group("paper preset inputs (never downloaded)")
    g.add_argument("--youhq", type=Path, help="YouHQ training clips (videos or frame folders)")
    g.add_argument("--sintel", type=Path, help="MPI-Sintel root")
    g.add_argument("--spring", type=Path, help="Spring root")
    g.add_argument("--tartanair", type=Path, help="TartanAir root")
    g.add_argument("--dit4sr", type=Path, help="the published dit4sr_q folder")
    g.add_argument("--vae", type=Path, help="the SD3.5-medium folder (or its vae/ folder)")
    g.add_argument("--null-prompt", type=Path, help="the DiT4SR null-prompt folder")
    g.add_argument("--raft-init", type=Path, help="raft-things.pth")
    g.add_argument("--teacher", type=Path, help="SEA-RAFT Tartan-C-T-TSKH-spring540x960-M.pth")
    g.add_argument("--gpus", type=int, default=4, help="GPUs for stages 1 and 2 (default 4, the paper's)")
    g.add_argument("--dry-run", action="store_true", help="check the inputs and print the plan; run nothing")
    p.set_defaults(func=_run_train_recipe)


def _run_paper(args) -> int:
    import shlex
    import subprocess
    import sys

    from daflow.recipe.paper import PaperInputs, check_inputs, format_plan, paper_plan

    benchmarks = {k: getattr(args, k) for k in ("sintel", "spring", "tartanair") if getattr(args, k)}
    inputs = PaperInputs(
        youhq=args.youhq,
        dit4sr=args.dit4sr,
        vae=args.vae,
        null_prompt=args.null_prompt,
        raft_init=args.raft_init,
        teacher=args.teacher,
        benchmarks=benchmarks,
    )
    problems = check_inputs(inputs)
    if problems:
        print("daflow train recipe paper: the plan cannot run:", file=sys.stderr)
        for line in problems:
            print(f"  {line}", file=sys.stderr)
        return 1
    steps = paper_plan(inputs, args.output, gpus=args.gpus)
    print(format_plan(steps, gpus=args.gpus))
    if args.dry_run:
        return 0
    for step in steps:  # every command resumes where it stopped, so rerunning the plan continues it
        print(f"\n== {step.name}: {step.command}", flush=True)
        subprocess.run(shlex.split(step.command), check=True)
    return 0


def _run_train_recipe(args) -> int:
    if args.preset == "paper":
        return _run_paper(args)
    from daflow.recipe.presets import RECIPE_PRESETS
    from daflow.recipe.run import Recipe

    output_dir(args.output)
    recipe = Recipe(
        args.output, RECIPE_PRESETS[args.preset], progress=not args.no_progress, device=resolve_device(args.device)
    )
    times = recipe.run_all(only=args.only)
    print(f"recipe {args.preset}: {len(times)} stage(s) run in {sum(times.values()):.0f} s -> {args.output}")
    if args.bundle_into:
        from daflow.recipe.bundle import bundle_recipe, bundle_restorer

        command = f"daflow train recipe {args.preset} -o {args.output}"
        if args.preset.startswith("restore"):
            print(f"bundled the tiny restorer into {bundle_restorer(args.output, args.bundle_into, command=command)}")
        else:
            print(
                f"bundled DA-Flow-tiny and RAFT*-tiny into {bundle_recipe(args.output, args.bundle_into, command=command)}"
            )
    return 0


def add_train_report(stages) -> None:
    p = stages.add_parser(
        "report",
        help="re-run a finished tiny recipe's small-scale reproduction report (Table 1-3 layouts)",
        description="Evaluate every model of a finished `daflow train recipe tiny` run on its held-out set and write "
        "RUN/report/report.md and results.json (Table 1, 2 and 3 layouts, the step modes); prints the report.",
    )
    p.add_argument("run", type=Path, help="the recipe's run folder (daflow train recipe tiny -o RUN)")
    add_device_arg(p)
    p.add_argument("--max-chunks", type=int, help="evaluate only the first N 3-frame chunks (default all)")
    add_progress_arg(p)
    p.set_defaults(func=_run_train_report)


def _run_train_report(args) -> int:
    from daflow.recipe.reproduce import check_finished, write_report

    check_finished(args.run)
    device = resolve_device(args.device)
    path = write_report(args.run, max_chunks=args.max_chunks, device=device, progress=not args.no_progress)
    print(path.read_text())
    return 0
