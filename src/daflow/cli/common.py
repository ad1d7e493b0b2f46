"""Helpers every command shares: devices, threads, output folders, model and backbone options and builders.

Nothing here imports torch at module level, so that ``daflow --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def command_parser(sub, name: str, *, help: str, description: str) -> argparse.ArgumentParser:
    """A sub-command's parser whose ``--help`` keeps the description's own line breaks."""
    return sub.add_parser(
        name, help=help, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )


def add_input_output(p, input_help: str) -> None:
    """The positional ``input`` (frames or a video) and the required ``-o/--output`` folder of a command that turns a
    clip into files."""
    p.add_argument("input", type=Path, help=input_help)
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")


def add_device_arg(p) -> None:
    """``--device``, the same for every command (:func:`resolve_device` reads it)."""
    p.add_argument("--device", default="auto", help="torch device (default auto: cuda if available, else cpu)")


def add_progress_arg(p) -> None:
    """``--no-progress``, the one spelling every command uses to turn its progress bars off."""
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def resolve_device(name: str) -> str:
    """``--device``: ``auto`` is cuda when available, else cpu; anything else as given, if torch knows it."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"--device {name!r} is not a torch device (cpu, cuda, cuda:1, ...): {err}") from None
    return name


def output_dir(path: Path) -> Path:
    """``-o``: :func:`daflow.files.check_output_dir`, imported here so that ``daflow --help`` does not load OpenCV."""
    from daflow.files import check_output_dir

    return check_output_dir(path)


def default_threads() -> int:
    """``OMP_NUM_THREADS`` when set; else the CPUs this process may use (its affinity). Never the machine's load:
    the thread count changes the order of floating-point sums, so a load-dependent default would make the same
    command give other bytes on a busy machine (``--threads`` chooses fewer; every run record says how many)."""
    import os

    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise ValueError(f"OMP_NUM_THREADS must be a positive integer, got {env!r}") from None
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def apply_threads(threads: int | None) -> int:
    """Set torch's and OpenCV's thread counts (``--threads``; default :func:`default_threads`)."""
    n = default_threads() if threads is None else threads
    if n < 1:
        raise ValueError(f"--threads must be >= 1, got {n}")
    import cv2
    import torch

    torch.set_num_threads(n)
    cv2.setNumThreads(n)
    return n


def add_threads(parser: argparse.ArgumentParser) -> None:
    """``--threads`` on a command and, recursively, on its sub-commands."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]  # noqa: SLF001
    if not subs:
        parser.add_argument(
            "--threads",
            type=int,
            default=None,
            help="CPU threads for torch and OpenCV (default: OMP_NUM_THREADS if set, else every CPU this process may "
            "use; the count is recorded, and the same count gives the same bytes whatever the machine's load)",
        )
    for action in subs:
        for child in action.choices.values():
            add_threads(child)


def parse_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be HxW (e.g. 256x256), got {text!r}") from None
    if h < 16 or w < 16:
        raise argparse.ArgumentTypeError(f"size must be at least 16x16, got {text!r}")
    return h, w


def add_model_args(p, *, default_iters_help: str) -> None:
    p.add_argument("--weights", type=Path, help="the published checkpoint of the model (never downloaded)")
    p.add_argument("--iters", type=int, help=default_iters_help)
    p.add_argument(
        "--scale",
        type=int,
        choices=(0, -1),
        help="SEA-RAFT input resize exponent: -1 runs at half resolution "
        "and scales the flow back (SEA-RAFT's Spring protocol); default: the preset's",
    )
    add_device_arg(p)
    p.add_argument(
        "--corr",
        default="auto",
        choices=("auto", "all-pairs", "windowed", "lean"),
        help="correlation: all-pairs volume, on-the-fly windows (linear memory) or lean (coarse levels stored, the "
        "finest on the fly: 1/3 of the volume's memory); auto: all-pairs while it fits, else lean",
    )
    p.add_argument(
        "--random-init",
        action="store_true",
        help="random weights instead of --weights: smoke tests only, the flow is meaningless and every output says so",
    )
    add_dtype_arg(
        p,
        "compute dtype of every network: the RAFT family's encoders and update block under autocast (the "
        "correlations, the flow and its upsampling stay float32) and DA-Flow's DiT weights (the VAE stays float32). "
        "Default auto: float32 for the RAFT family (the official evaluations' arithmetic), and for the DiT bfloat16 "
        "on CUDA, float32 on a CPU. bfloat16 measured 4-10x slower on CPUs without bfloat16 arithmetic; try it on "
        "CPUs with AMX",
    )
    add_progress_arg(p)


def add_dtype_arg(p, help_text: str) -> None:
    from daflow.choices import DTYPE_CHOICES

    p.add_argument("--dtype", default="auto", choices=DTYPE_CHOICES, help=help_text)


def load_model_from_args(args, name: str | None = None, *, step: int | str = 0):
    """The model of ``--model`` (or ``name``) with the command's options, through :func:`daflow.load_model` (the
    one loader: the same policy and checks as the library). ``step``: DA-Flow's denoising step (or ``"mean"``)."""
    from daflow.api import load_model

    args.device = resolve_device(args.device)
    name = name or args.model
    options = {"dtype": args.dtype}  # "auto" resolves per network (daflow.models.precision)
    if hasattr(args, "denoise_steps"):  # a command with the DA-Flow options (add_daflow_args)
        options |= {
            "num_steps": args.denoise_steps,
            "preset": args.preset,
            "seed": args.seed,
            "dit4sr": args.dit4sr,
            "vae": args.vae,
            "null_prompt": args.null_prompt,
            "step": step,
        }
    model = load_model(
        name,
        weights=args.weights,
        iters=args.iters,
        scale=getattr(args, "scale", None),
        corr_mode=args.corr,
        random_init=args.random_init,
        device=args.device,
        **options,
    )  # with --random-init the library has logged a warning and the description says so
    if name == "daflow-tiny":
        from daflow.models.bundled import NOTICE

        print(f"note: {NOTICE}", file=sys.stderr)
    return model


def add_backbone_args(p, *, in_weights: bool = False, dtype: bool = True) -> None:
    """The DiT4SR / VAE / null-prompt options every diffusion command shares (``in_weights``: a DA-Flow model
    folder given with ``--weights`` already holds the DiT and VAE, so these only override it; ``dtype``: add
    ``--dtype``, which a flow command has from :func:`add_model_args` already)."""
    dit_help, vae_help = (
        ("DiT4SR transformer (default: WEIGHTS/transformer)", "SD3.5 VAE (default: WEIGHTS/vae)")
        if in_weights
        else (
            "DiT4SR transformer: dit4sr_q folder, its transformer/ folder, or the safetensors file (never "
            "downloaded; Hugging Face acceptee/DiT4SR)",
            "SD3.5 VAE: the stable-diffusion-3.5-medium folder, its vae/ folder or the file",
        )
    )
    p.add_argument("--dit4sr", type=Path, help=dit_help)
    p.add_argument("--vae", type=Path, help=vae_help)
    p.add_argument(
        "--null-prompt",
        type=Path,
        help="folder with NULL_prompt_embeds.pt and NULL_pooled_prompt_embeds.pt "
        "(published with DiT4SR); default: zeros, logged",
    )
    p.add_argument(
        "--preset", default="tiny", choices=("tiny", "paper"), help="model size for --random-init (default tiny)"
    )
    if dtype:
        add_dtype_arg(p, "DiT weights dtype (default auto: bfloat16 on CUDA, float32 on a CPU); the VAE stays float32")
    p.add_argument("--seed", type=int, default=0, help="seed of the starting noise (default 0)")


def add_diffusion_args(p) -> None:
    add_backbone_args(p)
    p.add_argument(
        "--random-init",
        action="store_true",
        help="random weights at --preset size instead of --dit4sr/--vae "
        "(smoke tests: the features carry no learned correspondence)",
    )
    add_device_arg(p)
    add_progress_arg(p)


def device_and_dtype(args):
    """Resolve ``--device auto`` in place and return the dtype of ``--dtype`` (auto: bf16 on CUDA, else fp32)."""
    from daflow.models.precision import resolve_dtype

    args.device = resolve_device(args.device)
    return resolve_dtype(args.dtype, args.device)


def build_backbone(args, *, bundled_fallback: bool = False, use: str = "the features carry no learned correspondence"):
    """The DiT4SR backbone of ``--dit4sr/--vae/--null-prompt`` or ``--random-init`` (:func:`daflow.api.load_backbone`,
    the one builder); with ``bundled_fallback`` and neither, the bundled tiny restorer. A stand-in is said on stderr
    (``use``: what it means for this command)."""
    from daflow.api import load_backbone

    backbone, note = load_backbone(
        args.dit4sr,
        args.vae,
        args.null_prompt,
        random_init=args.random_init,
        preset=args.preset,
        seed=args.seed,
        dtype=device_and_dtype(args),
        device=args.device,
        bundled_fallback=bundled_fallback,
    )
    if note:
        print(f"{'warning' if args.random_init else 'note'}: {note}: {use}", file=sys.stderr)
    return backbone


def add_daflow_args(p) -> None:
    g = p.add_argument_group(
        "DA-Flow (--model daflow)",
        "--weights is the folder written by `daflow train flow` "
        "(config.json, flownet.safetensors, and transformer/ + vae/ unless given here)",
    )
    add_backbone_args(g, in_weights=True, dtype=False)
    g.add_argument("--denoise-steps", type=int, default=10, help="denoising schedule length (default 10, the paper's)")


def add_denoise_steps(p, what: str = "") -> None:
    """``--denoise-steps`` (alias ``--steps``): the rectified-flow schedule length, 10 as in the paper."""
    p.add_argument(
        "--denoise-steps",
        "--steps",
        dest="denoise_steps",
        type=int,
        default=10,
        help=f"{what}denoising schedule length (default 10)",
    )


def int_list(text: str, name: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{name} must be comma-separated integers, got {text!r}") from None


def add_range_args(p) -> None:
    p.add_argument("--start", type=int, default=0, help="first frame (0-based index; default 0)")
    p.add_argument("--end", type=int, default=None, help="stop before this frame index (default: the last frame)")
    p.add_argument("--stride", type=int, default=1, help="take every N-th frame (default 1)")


def flow_model(name: str, weights, device, *, seed: int = 0):
    """The model of ``--flow-model`` (:func:`daflow.load_model`)."""
    from daflow.api import load_model
    from daflow.models.catalog import entry

    entry(name, flag="flow-model")
    return load_model(name, weights=weights, device=device, seed=seed)


def model_record(args) -> dict:
    """What a command's JSON says about the model: its name, its compute dtype and where its weights came from (the
    table's bundled folder and its provenance for a shipped model)."""
    if not hasattr(args, "dtype"):
        return _weights_record(args)
    from daflow.models.catalog import DAFLOW_NAMES
    from daflow.models.precision import dtype_name, flow_dtype

    dtypes = {"dtype": dtype_name(flow_dtype(args.dtype))}
    if args.model in DAFLOW_NAMES:
        dtypes["dit_dtype"] = dtype_name(device_and_dtype(args))
    return {**dtypes, **_weights_record(args)}


def _weights_record(args) -> dict:
    from daflow.models.catalog import entry

    if args.random_init:
        return {"weights": None, "random_init": True, "provenance": "random weights (--random-init)"}
    if args.weights:
        return {"weights": str(args.weights), "random_init": False}
    folder = entry(args.model).bundled
    if not folder:
        return {"weights": None, "random_init": False}
    from daflow.models import bundled

    # the refiner and DA-Flow-small record their own provenance; the tiny recipe's models share one at the bundle's root
    own = folder in (bundled.REFINER, bundled.DAFLOW_SMALL)
    prov = bundled.provenance(bundled.BUNDLE_DIR / folder if own else None)
    keys = ("command", "daflow", "git_commit") + (() if own else ("stages",))
    return {
        "weights": f"bundled:{folder}",
        "random_init": False,
        "bundled_path": str(bundled.BUNDLE_DIR / folder),
        "provenance": {k: prov.get(k) for k in keys if k in prov},
    }


def add_settings_arg(p) -> None:
    """``--settings``: training settings, apart from the model's size (``--preset``)."""
    p.add_argument(
        "--settings",
        choices=("tiny", "paper"),
        help="training settings (steps, batch, crops, learning rate): default paper when training the published "
        "DiT4SR (--dit4sr), else those of --preset",
    )


def training_settings(args) -> str:
    """The training-settings preset: ``--settings`` when given; the paper's for published weights (``--dit4sr``), so
    that fine-tuning ``dit4sr_q`` never runs with the tiny model's settings by accident; else ``--preset``."""
    if args.settings:
        return args.settings
    return "paper" if getattr(args, "dit4sr", None) else args.preset
