"""daflow train: lift (stage 1), flow (stage 2), raft (baselines), refine (the default model), recipe."""

from __future__ import annotations

import argparse
from pathlib import Path

from daflow.cli.common import (
    add_device_arg,
    add_diffusion_args,
    add_progress_arg,
    add_settings_arg,
    build_backbone,
    command_parser,
    int_list,
    output_dir,
    parse_size,
    resolve_device,
    training_settings,
)
from daflow.cli.train_recipes import add_train_recipe, add_train_refine, add_train_report


def _add_train(sub) -> None:
    p = command_parser(
        sub,
        "train",
        help="train DA-Flow's stages (lift, flow), the RAFT baselines (raft), or all at tiny size (recipe)",
        description=(
            "Training stages of the paper. `daflow train lift` fine-tunes the lifted DiT4SR (stage 1, paper §4.2);\n"
            "`daflow train flow` trains the DPT heads and the hybrid RAFT with the DiT frozen (stage 2, §4.4);\n"
            "`daflow train raft` trains plain RAFT on the same data (the RAFT / RAFT* baselines, App. C.2);\n"
            "`daflow train recipe tiny` runs every stage at small size on a CPU; `daflow train report RUN` re-runs its\n"
            "small-scale reproduction report."
        ),
    )
    stages = p.add_subparsers(dest="stage", metavar="STAGE")
    _add_train_lift(stages)
    _add_train_flow(stages)
    _add_train_raft(stages)
    add_train_recipe(stages)
    add_train_refine(stages)
    add_train_report(stages)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


_RUN_HELP = {  # per training command: the help of the shared options
    "lift": {
        "labels": "",
        "steps": "tiny 200, paper 20000",
        "batch": "tiny 2, paper 8",
        "crop": "multiples of 16: tiny 64x64, paper 512x512",
        "lr": "AdamW: tiny 5e-4, paper 5e-5 as DiT4SR",
        "diffusion": True,
    },
    "flow": {
        "labels": " with flow labels",
        "steps": "tiny 300, paper 20000",
        "batch": "tiny 2, paper 8",
        "crop": "multiples of 16: tiny 64x64, paper 512x512",
        "lr": "peak: tiny 4e-4, paper 5e-5",
        "diffusion": True,
    },
    "raft": {
        "labels": " with flow labels",
        "steps": "default: the preset's",
        "batch": "default: the preset's",
        "crop": "default: the preset's",
        "lr": "peak; default: the preset's",
        "diffusion": False,
    },
}


def _add_run_args(p, command: str) -> None:
    """The options every training stage shares: data, run folder, the loop's sizes and the on-the-fly degradation
    (``diffusion``: also the DiT4SR options, ``--settings``, mixed precision, checkpoints and workers)."""
    h = _RUN_HELP[command]
    labels, steps, batch, crop, lr, diffusion = (h[k] for k in ("labels", "steps", "batch", "crop", "lr", "diffusion"))
    see = " (see above)" if diffusion else ""
    p.add_argument("--data", required=True, metavar="DATASET_SPEC", help=f"training clips{labels}{see}")
    p.add_argument("-o", "--output", type=Path, required=True, help="run folder")
    if diffusion:
        add_diffusion_args(p)
        add_settings_arg(p)
    p.add_argument("--steps", type=int, help=f"optimisation steps ({steps})")
    p.add_argument("--batch", type=int, help=f"clips per step and process ({batch})")
    if diffusion:
        p.add_argument("--frames", type=int, help="frames per clip (default 3)")
    p.add_argument("--crop", type=parse_size, help=f"random crop HxW ({crop})")
    p.add_argument("--lr", type=float, help=f"learning rate ({lr})")
    p.add_argument(
        "--degrade",
        default="realbasicvsr",
        help="on-the-fly degradation preset for sources without LQ frames (default realbasicvsr, the paper's; none "
        "to train on clean LQ = HQ)",
    )
    if diffusion:
        p.add_argument("--mixed-precision", choices=("auto", "no", "bf16", "fp16"), help="default auto: bf16 on CUDA")
        p.add_argument("--save-every", type=int, help="checkpoint interval in steps")
        p.add_argument("--workers", type=int, help="data-loading worker processes")


def _overrides(args, **names: str) -> dict:
    """``{config field: value}`` of the options given (``names``: field -> argument name; every shared loop option
    of :func:`_add_run_args` is included when the command has it)."""
    shared = ("steps", "batch", "frames", "crop", "lr", "mixed_precision", "save_every", "workers", "seed")
    fields = {k: k for k in shared if hasattr(args, k)} | names
    return {k: getattr(args, a) for k, a in fields.items() if getattr(args, a) is not None}


def _backbone_info(args, settings: str) -> dict:
    """What a trained model's record says of the DiT4SR it was trained on."""
    return {
        "dit4sr": str(args.dit4sr) if args.dit4sr else None,
        "vae": str(args.vae) if args.vae else None,
        "random_init": args.random_init,
        "preset": args.preset,
        "settings": settings,
    }


def _done(summary: dict, where: str, digits: int = 3) -> str:
    """The last line of a training command."""
    loss = f"loss {summary['first_loss']:.{digits}f} -> {summary['last_loss']:.{digits}f}"
    return f"steps {summary['start']} -> {summary['steps']}: {loss}; {where}"


def _add_train_lift(stages) -> None:
    from daflow.choices import module_doc

    p = stages.add_parser(
        "lift",
        help="stage 1: fine-tune the lifted DiT4SR with the flow-matching loss",
        description=(
            "Fine-tune DiT4SR with full spatio-temporal attention on F-frame clips (paper §4.2, Eq. 6): HQ and LQ frames\n"
            "through the frozen VAE, logit-normal timesteps, x0-preconditioned flow-matching loss (DiT4SR's), null\n"
            "prompt. Writes RUN/transformer (loadable with --dit4sr), RUN/checkpoints/step_N (safetensors, resumed\n"
            "automatically when RUN already holds one), RUN/log.jsonl and RUN/train_lift.json. Multi-GPU:\n"
            "  accelerate launch -m daflow.cli train lift ...\n\n"
            "--preset tiny trains the tiny model from random weights on CPU, e.g.\n"
            "  daflow train lift --preset tiny --random-init --data 'synthetic:tiny?n=64&size=64x64' -o runs/lift\n"
            "--preset paper has the paper's settings (20K steps; batch 8 per GPU, 4 GPUs; 512x512 crops; 3 frames):\n"
            "  daflow train lift --preset paper --dit4sr dit4sr_q --vae sd3.5 --null-prompt dit4sr_null \\\n"
            "      --data youhq:YouHQ-Train -o runs/lift\n\n"
            + "\n\n".join(module_doc("daflow.train.data").split("\n\n")[1:3])
        ),
    )
    _add_run_args(p, "lift")
    p.add_argument(
        "--trainable",
        choices=("control", "attention", "all"),
        help="which parameters train (paper: control, DiT4SR's choice; tiny: all)",
    )
    p.add_argument(
        "--loss", choices=("x0", "velocity"), help="x0: DiT4SR's preconditioned loss (default); velocity: Eq. 6"
    )
    p.add_argument(
        "--lq-mask",
        type=float,
        help="cross-frame completion (not in the paper; default 0): mask up to this share of each frame's LQ tokens, "
        "so that restoring them needs the other frames",
    )
    p.add_argument(
        "--gradient-checkpointing",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="recompute blocks in the backward pass (paper preset: on)",
    )
    p.set_defaults(func=_run_train_lift)


def _run_train_lift(args) -> int:
    import dataclasses

    from daflow.models.vae import save_vae
    from daflow.train.data import build_clip_source
    from daflow.train.lift import LIFT_PRESETS, train_lift

    output_dir(args.output)
    overrides = _overrides(
        args, trainable="trainable", loss="loss", gradient_checkpointing="gradient_checkpointing", lq_mask="lq_mask"
    )
    settings = training_settings(args)
    config = dataclasses.replace(LIFT_PRESETS[settings], **overrides)
    source = build_clip_source(args.data, num_frames=config.frames, degrade=args.degrade)
    backbone = build_backbone(args)
    info = _backbone_info(args, settings)
    print(
        f"daflow train lift: {settings} settings, {config.steps} steps of {config.batch} x {config.frames}-frame "
        f"{config.crop[0]}x{config.crop[1]} clips from {args.data}; trainable: {config.trainable}"
    )
    summary = train_lift(backbone, source, args.output, config, model_info=info, progress=not args.no_progress)
    if args.random_init:  # the VAE is part of the model only when it was made here
        save_vae(backbone.vae, args.output / "vae")
    n = f"{summary['trainable_parameters']:,} trainable parameters, {summary['seconds']:.1f} s"
    print(_done(summary, f"({n}); transformer in {args.output / 'transformer'}", digits=4))
    return 0


def _add_train_flow(stages) -> None:
    from daflow.choices import module_doc

    p = command_parser(
        stages,
        "flow",
        help="stage 2: train the DPT heads and hybrid RAFT on frozen diffusion features",
        description=(
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
            + "\n\n".join(module_doc("daflow.train.data").split("\n\n")[1:3])
        ),
    )
    _add_run_args(p, "flow")
    p.add_argument("--raft-init", type=Path, help="RAFT weights to start from (raft-things.pth; default: random)")
    p.add_argument("--blocks", help="tapped blocks, comma-separated (default: the preset's; paper 3,13,16,17)")
    p.add_argument("--head", choices=("dpt", "bilinear"), help="upsampling heads (default dpt; bilinear: App. C.3)")
    p.add_argument("--iters", type=int, help="refinement iterations M (tiny 6, paper 12)")
    p.add_argument("--denoise-steps", type=int, help="denoising schedule length (default 10)")
    p.set_defaults(func=_run_train_flow)


def _run_train_flow(args) -> int:
    import dataclasses

    from daflow.models.daflow import DAFLOW_PRESETS, DAFlow
    from daflow.train.data import build_clip_source
    from daflow.train.flow import FLOW_PRESETS, train_flow

    output_dir(args.output)
    overrides = _overrides(args, iters="iters", num_steps="denoise_steps")
    settings = training_settings(args)
    config = dataclasses.replace(FLOW_PRESETS[settings], **overrides)
    model_config = DAFLOW_PRESETS["paper" if args.dit4sr else args.preset]  # the model's size follows its DiT
    if args.blocks:
        blocks = tuple(int_list(args.blocks, "--blocks"))
        if len(blocks) != len(model_config.blocks):
            raise ValueError(
                f"--blocks: the DPT heads take {len(model_config.blocks)} levels (scales "
                f"{model_config.dpt_scales}); give {len(model_config.blocks)} blocks, got {list(blocks)}"
            )
        model_config = dataclasses.replace(model_config, blocks=blocks)
    if args.head:
        model_config = dataclasses.replace(model_config, head=args.head)
    source = build_clip_source(args.data, num_frames=config.frames, degrade=args.degrade)
    backbone = build_backbone(args)
    model = DAFlow(model_config, backbone)
    if args.raft_init:
        model.init_raft(args.raft_init)
    info = {
        **_backbone_info(args, settings),
        "raft_init": str(args.raft_init) if args.raft_init else None,
        "config": model_config.to_dict(),
    }
    print(
        f"daflow train flow: {settings} settings, {config.steps} steps of {config.batch} x {config.frames}-frame "
        f"{config.crop[0]}x{config.crop[1]} clips from {args.data}; blocks {list(model_config.blocks)}, "
        f"RAFT-{model_config.raft} from {args.raft_init or 'random weights'}"
    )
    summary = train_flow(
        model,
        source,
        args.output,
        config,
        model_info=info,
        save_backbone=args.random_init,
        progress=not args.no_progress,
    )
    n = f"{summary['trainable_parameters']:,} trainable parameters, {summary['seconds']:.1f} s"
    print(_done(summary, f"({n}); model in {args.output / 'model'}"))
    return 0


def _add_train_raft(stages) -> None:
    p = stages.add_parser(
        "raft",
        help="RAFT on clean or LQ frames with flow labels (RAFT / RAFT* baselines, App. C.2)",
        description=(
            "Train RAFT with DA-Flow's stage-2 setup (Eq. 18, one-cycle, crops, labels) on the clean (--inputs hq) or "
            "degraded (--inputs lq, RAFT*) frames of the clips; --init starts from RAFT weights (raft-things.pth or an "
            "earlier run). Writes RUN/model/raft.safetensors (evaluate with --model raft or raft-small --weights ...)."
        ),
    )
    _add_run_args(p, "raft")
    p.add_argument(
        "--preset", default="tiny", choices=("tiny", "paper"), help="settings (tiny: RAFT-small, 64x64 crops)"
    )
    p.add_argument(
        "--inputs", choices=("hq", "lq"), help="train on the clean (hq) or degraded (lq, RAFT*) frames (default lq)"
    )
    p.add_argument("--init", type=Path, help="RAFT weights to start from")
    p.add_argument("--iters", type=int, help="refinement iterations")
    add_device_arg(p)
    p.add_argument("--seed", type=int, default=0, help="run seed (default 0)")
    add_progress_arg(p)
    p.set_defaults(func=_run_train_raft)


def _run_train_raft(args) -> int:
    import dataclasses

    from daflow.train.data import build_clip_source
    from daflow.train.raft import RAFT_PRESETS, train_raft

    output_dir(args.output)
    overrides = _overrides(args, iters="iters", inputs="inputs")
    config = dataclasses.replace(RAFT_PRESETS[args.preset], **overrides)
    source = build_clip_source(args.data, num_frames=config.frames, degrade=args.degrade)
    device = resolve_device(args.device)
    print(
        f"daflow train raft: RAFT-{'small' if config.small else 'large'} on {config.inputs} frames of {args.data}, "
        f"{config.steps} steps, from {args.init or 'random weights'}"
    )
    summary = train_raft(source, args.output, config, init=args.init, device=device, progress=not args.no_progress)
    print(_done(summary, f"model in {args.output / 'model'}"))
    return 0


def register(sub) -> None:
    """Add this module's command(s) to the ``daflow`` parser."""
    _add_train(sub)
