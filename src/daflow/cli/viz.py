"""daflow viz: colour-code a flow file."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _add_viz(sub) -> None:
    p = sub.add_parser(
        "viz",
        help="colour-code a flow file (Middlebury colour wheel)",
        description=(
            "Write a PNG of a flow file (.flo, .flo5, KITTI .png, .npy, TartanAir *_flow.npy) with the Baker et al. "
            "colour wheel: hue = direction, saturation = magnitude. Invalid pixels are black."
        ),
    )
    p.add_argument("flow", type=Path, help="flow file")
    p.add_argument("-o", "--output", type=Path, required=True, help="output image (.png or .jpg)")
    p.add_argument(
        "--max-flow", type=float, default=None, help="fixed normaliser in pixels (default: per image maximum)"
    )
    p.set_defaults(func=_run_viz)


def _run_viz(args) -> int:
    from daflow.files import write_image
    from daflow.flow.io import read_flow
    from daflow.flow.viz import flow_to_color

    flow, valid = read_flow(args.flow)
    write_image(args.output, flow_to_color(flow, max_flow=args.max_flow, valid=valid))
    mag = np.linalg.norm(flow[valid], axis=-1) if valid.any() else np.zeros(1)
    print(
        f"{args.flow}: {flow.shape[1]}x{flow.shape[0]}, {100 * valid.mean():.1f}% valid, "
        f"|flow| max {mag.max():.2f} px mean {mag.mean():.2f} px -> {args.output}"
    )
    return 0


def register(sub) -> None:
    """Add this module's command(s) to the ``daflow`` parser."""
    _add_viz(sub)
