"""daflow synth: a synthetic clip with exact ground-truth flow."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import daflow
from daflow.cli.common import output_dir, parse_size


def _add_synth(sub) -> None:
    from daflow.choices import SYNTHETIC_PRESET_NAMES

    p = sub.add_parser(
        "synth",
        help="write a synthetic clip with exact ground-truth flow",
        description=(
            "Render a layered synthetic clip (bundled photographs and procedural textures, smooth parametric motion) "
            "and write OUT/frames/frame_0000.png, OUT/flow/frame_0000.flo, ... (exact forward flow k -> k+1), "
            "OUT/occlusions/frame_0000.png, ... (255 = occluded in frame k+1) and OUT/synth.json."
        ),
    )
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    p.add_argument("--frames", type=int, default=3, help="number of frames (default 3)")
    p.add_argument("--size", type=parse_size, default=(256, 256), help="HxW (default 256x256)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--preset", choices=SYNTHETIC_PRESET_NAMES, default="default", help="motion ranges (default: default)"
    )
    p.set_defaults(func=_run_synth)


def _run_synth(args) -> int:
    import dataclasses

    from daflow.data.synthetic import SYNTHETIC_PRESETS, render_clip
    from daflow.files import atomic_write_text, write_image
    from daflow.flow.io import write_flow

    if args.frames < 2:
        raise ValueError(f"--frames must be at least 2, got {args.frames}")
    cfg = dataclasses.replace(
        SYNTHETIC_PRESETS[args.preset], height=args.size[0], width=args.size[1], num_frames=args.frames
    )
    out = output_dir(args.output)
    clip = render_clip(cfg, args.seed)
    for k, frame in enumerate(clip.frames):
        write_image(out / "frames" / f"frame_{k:04d}.png", frame)
    for k in range(len(clip.flow)):
        write_flow(out / "flow" / f"frame_{k:04d}.flo", clip.flow[k], clip.valid[k])
        write_image(out / "occlusions" / f"frame_{k:04d}.png", clip.occlusion[k].astype(np.uint8) * 255)
    meta = {
        "config": dataclasses.asdict(cfg),
        "seed": args.seed,
        "preset": args.preset,
        "daflow": daflow.__version__,
        "layers": clip.to_sample().meta["layers"],
    }
    atomic_write_text(out / "synth.json", json.dumps(meta, indent=2))
    mag = np.linalg.norm(clip.flow, axis=-1)
    print(
        f"wrote {args.frames} frames of HxW {args.size[0]}x{args.size[1]} to {out}: |flow| max {mag.max():.1f} px, "
        f"{100 * clip.occlusion.mean():.1f}% occluded"
    )
    return 0


def register(sub) -> None:
    """Add this module's command(s) to the ``daflow`` parser."""
    _add_synth(sub)
