"""daflow restore and daflow evaluate-restoration: flow-guided restoration (paper App. C.4)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from daflow.cli.common import (
    add_denoise_steps,
    add_device_arg,
    add_diffusion_args,
    add_input_output,
    build_backbone,
    command_parser,
    flow_model,
    output_dir,
    resolve_device,
)

# RestoreSettings()'s (a test holds them equal), literal here to keep --help light
PREFILTER, GUIDANCE, ENSEMBLE = True, 0.05, 8


def _add_restore(sub) -> None:
    p = command_parser(
        sub,
        "restore",
        help="restore a degraded video: one-step diffusion (default) or a flow-guided temporal filter",
        description=(
            "Restore a video or frame folder. --method diffusion (default): the lifted DiT4SR restores overlapping\n"
            "chunks of --chunk frames at once (full spatio-temporal attention). --sampler one-step (the default for\n"
            "the bundled restorer, which is trained for it) is one deterministic DiT call from the LQ latent, its\n"
            "output then fused by the restorer's video fidelity head with the LQ frame and its two neighbours, warped\n"
            "onto it by the flow of --flow-model on the LQ input, averaged over --ensemble flips and transposes\n"
            "(--no-fidelity: the DiT's output alone);\n"
            "--sampler full runs the 10-step rectified-flow sampler from noise (sharper, less faithful).\n"
            "The flow-guided temporal filter runs first (--no-prefilter to skip it). MGLD-style motion guidance\n"
            "(paper App. C.4; --guidance W, default 0.05, 0 = none): the predicted clean frames are warped onto their\n"
            "neighbours with the flow and take a gradient step on the occlusion-masked warping loss.\n"
            "--method temporal: the classical baseline, each frame averaged\n"
            "with its --radius neighbours on each side warped onto it by --flow-model, occlusion-aware, robust weights.\n"
            "Writes OUT/frames/*.png at the input size, OUT/restored.mp4 for a video input, OUT/restore.json.\n"
            "Resumable: finished chunks are kept. Score it with `daflow evaluate-restoration OUT --reference HQ`."
        ),
    )
    add_input_output(p, "video file or folder of frames (degraded)")
    p.add_argument(
        "--method",
        default="diffusion",
        choices=("diffusion", "temporal"),
        help="diffusion (the lifted DiT4SR, default) or temporal (flow-guided temporal filter)",
    )
    _add_temporal_options(p)
    _add_diffusion_options(p)
    add_diffusion_args(p)
    p.set_defaults(func=_run_restore)


def _add_diffusion_options(p) -> None:
    """``--method diffusion``'s options: the sampler, the fidelity head, the guidance, the chunks."""
    p.add_argument(
        "--sampler",
        default="auto",
        choices=("auto", "one-step", "full"),
        help="diffusion: one deterministic DiT call, or the full sampler from noise; auto (default): one-step "
        "for a restorer fine-tuned for it (the bundled one), else full",
    )
    p.add_argument(
        "--sigma",
        type=float,
        help="diffusion, one-step: the noise level of the call (default: the level the restorer was fine-tuned at)",
    )
    p.add_argument(
        "--prefilter",
        action=argparse.BooleanOptionalAction,
        default=PREFILTER,
        help="diffusion: run the temporal filter first (--method temporal's settings) and restore its output "
        "(default on; --no-prefilter restores the input itself)",
    )
    p.add_argument(
        "--no-fidelity",
        action="store_true",
        help="diffusion, one-step: skip the restorer's fidelity head (the DiT's output alone)",
    )
    p.add_argument(
        "--gate",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="diffusion, one-step: weight the DiT's output that the fidelity head sees by the restorer's degradation "
        "gate, which trusts it less the more the input looks like codec damage alone (default on; --no-gate trusts "
        "it fully)",
    )
    p.add_argument(
        "--ensemble",
        type=int,
        default=ENSEMBLE,
        choices=(1, 2, 4, 8),
        help=f"diffusion, one-step: average the fidelity head over this many flips and transposes of its input "
        f"(geometric self-ensemble; default {ENSEMBLE}, 1 = off)",
    )
    p.add_argument(
        "--guidance",
        type=float,
        default=GUIDANCE,
        help=f"motion-guidance weight w (default {GUIDANCE:g}; 0 = off)",
    )
    p.add_argument(
        "--guidance-space",
        default="latent",
        choices=("latent", "image"),
        help="latent (MGLD's, default) or image (the paper's variant, through the VAE decoder)",
    )
    add_denoise_steps(p, "diffusion, full sampler: ")
    p.add_argument("--chunk", type=int, default=3, help="frames restored together (default 3, the lifting's F)")
    p.add_argument("--overlap", type=int, default=1, help="frames shared with the previous chunk (default 1)")
    p.add_argument(
        "--scale",
        type=int,
        default=1,
        choices=(1, 2, 4),
        help="upsample a truly low-resolution input "
        "first (bicubic); degraded mirrors are already at the HQ size (default 1)",
    )


def _add_temporal_options(p) -> None:
    """The temporal filter's options (``--method temporal`` and the prefilter) and the flow model of both."""
    p.add_argument("--radius", type=int, default=2, help="temporal: neighbours on each side (default 2)")
    p.add_argument(
        "--strength",
        type=float,
        default=32.0,
        help="temporal and the prefilter: how much more than the noise a neighbour may differ and still be averaged "
        "(h; default 32)",
    )
    p.add_argument(
        "--flow-model",
        default="dis-raft",
        help="flow for the prefilter, the video head and the guidance: any `evaluate` model (dis-raft, "
        "dis, raft, sea-raft-m, raft-star-tiny, ...) or daflow-tiny (default dis-raft)",
    )
    p.add_argument("--flow-weights", type=Path, help="weights of --flow-model where it needs them")


def _run_restore(args) -> int:
    import torch

    from daflow.data.video import FrameSource
    from daflow.restoration import RestoreSettings, restore_video
    from daflow.restoration.diffusion import uses_video_head

    settings = RestoreSettings(
        method=args.method,
        sampler=args.sampler,
        sigma=args.sigma,
        radius=args.radius,
        strength=args.strength,
        fidelity=not args.no_fidelity,
        gate=args.gate,
        ensemble=args.ensemble,
        prefilter=args.prefilter,
        guidance=args.guidance,
        space=args.guidance_space,
        flow_model=args.flow_model,
        steps=args.denoise_steps,
        chunk=args.chunk,
        overlap=args.overlap,
        scale=args.scale,
        seed=args.seed,
    )
    output_dir(args.output)
    source = FrameSource(args.input)
    if len(source) < 1:
        raise ValueError(f"{args.input}: no frames")
    source.check_sizes()
    args.device = resolve_device(args.device)

    def load_flow():
        return flow_model(args.flow_model, args.flow_weights, args.device, seed=args.seed).clip

    estimator = load_flow() if settings.needs_flow else None
    if settings.method == "temporal" or settings.prefilter:
        from daflow.restoration.temporal import pair_flow_fn

        pair_flow_fn(estimator)  # a pairwise model, or a one-line error before any work (and before the restorer)
    backbone = (
        build_backbone(args, bundled_fallback=True, use="restoring with it") if settings.method == "diffusion" else None
    )
    if estimator is None and uses_video_head(backbone, settings.resolved(backbone)):
        estimator = load_flow()  # the restorer's video head aligns the neighbours by it
    if backbone is not None and backbone.one_step_sigma is not None and settings.sampler == "full":
        print(
            "warning: this restorer is fine-tuned for the one-step call; its full sampler gives frames far below "
            "the input's fidelity (BENCHMARKS.md, 'Video restoration')",
            file=sys.stderr,
        )
    record = {
        "dit4sr": (str(args.dit4sr) if args.dit4sr else ("random" if args.random_init else backbone.origin))
        if backbone is not None
        else None,
        "vae": str(args.vae) if args.vae else None,
        "null_prompt": str(args.null_prompt) if args.null_prompt else None,
        "flow": estimator.description if estimator else None,
        "threads": torch.get_num_threads(),
    }
    how = (
        f"temporal filter, radius {args.radius}"
        if settings.method == "temporal"
        else f"{'temporal prefilter, ' if settings.prefilter else ''}{settings.resolved(backbone).sampler} diffusion, "
        f"guidance {args.guidance} ({args.guidance_space})"
    )
    print(f"daflow restore: {len(source)} frames of {args.input}, {how} with {record['flow'] or 'no flow'}")
    report = restore_video(
        backbone, source, args.output, settings, flow_estimator=estimator, progress=not args.no_progress, record=record
    )
    print(
        f"{report.frames} frames in {report.chunks} chunks ({report.skipped} already done) -> {args.output} "
        f"[{report.seconds:.1f} s]"
    )
    return 0


def _add_evaluate_restoration(sub) -> None:
    p = sub.add_parser(
        "evaluate-restoration",
        help="temporal consistency (E*warp) and PSNR/SSIM of a restored video",
        description=(
            "E_warp of Lai et al. 2018 (frames in [0, 1], flow and occlusion of --flow-model on the reference video: "
            "forward-backward check and motion-boundary test; masked squared error summed over channels / visible "
            "pixels, mean over pairs), reported as E*warp = E_warp x 1000; with --reference also PSNR and SSIM. The "
            "flow comes from the reference (HQ) video when given, so every restoration is scored on the same pixels."
        ),
    )
    p.add_argument("restored", type=Path, help="restored video, frame folder, or a `daflow restore` output folder")
    p.add_argument("--reference", type=Path, help="the HQ video or frame folder (same length and size)")
    p.add_argument("--flow-model", default="dis", help="flow model for E_warp (default dis; any `evaluate` model)")
    p.add_argument("--flow-weights", type=Path, help="weights of --flow-model where it needs them")
    add_device_arg(p)
    p.add_argument("-o", "--output", type=Path, help="write the result as JSON here")
    p.set_defaults(func=_run_evaluate_restoration)


def _run_evaluate_restoration(args) -> int:
    from daflow.data.video import FrameSource
    from daflow.files import atomic_write_text
    from daflow.restoration import clip_flows
    from daflow.restoration.consistency import ConsistencyResult, ewarp, psnr, ssim

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
            raise ValueError(
                f"--reference {args.reference} frames are {reference.shape[2]}x{reference.shape[1]}, "
                f"the restored ones {frames.shape[2]}x{frames.shape[1]}; they must match"
            )
    if len(frames) < 2:
        raise ValueError(f"{path}: E_warp needs at least 2 frames, got {len(frames)}")
    device = resolve_device(args.device)
    estimator = flow_model(args.flow_model, args.flow_weights, device).clip
    base = reference if reference is not None else frames
    flows = clip_flows(estimator, base, device)
    ewarp = ewarp(frames, flows.fw.permute(0, 2, 3, 1).numpy(), flows.bw.permute(0, 2, 3, 1).numpy())
    result = ConsistencyResult(
        ewarp_star=1000 * ewarp,
        frames=len(frames),
        flow_model=estimator.description,
        flow_from="reference" if reference is not None else "restored",
        psnr=psnr(frames, reference) if reference is not None else None,
        ssim=ssim(frames, reference) if reference is not None else None,
    )
    print("| video | E*warp | PSNR | SSIM |\n|---|---|---|---|")

    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f}"

    print(f"| {args.restored} | {result.ewarp_star:.3f} | {fmt(result.psnr)} | {fmt(result.ssim)} |")
    print(f"(flow: {result.flow_model}, on the {result.flow_from} frames)")
    if args.output:
        atomic_write_text(
            args.output,
            json.dumps(
                {
                    **result.to_dict(),
                    "restored": str(path),
                    "reference": str(args.reference) if args.reference else None,
                },
                indent=2,
            ),
        )
    return 0


def register(sub) -> None:
    """Add this module's command(s) to the ``daflow`` parser."""
    _add_restore(sub)
    _add_evaluate_restoration(sub)
