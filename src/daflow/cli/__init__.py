"""The ``daflow`` command. Thin: it parses arguments, calls the library and prints.

One module per command (``estimate.py`` holds ``daflow estimate``, ``train.py`` the ``daflow train`` stages, ...),
each with a ``register(sub)`` that adds its parser; ``common.py`` holds the options and builders several commands
share. Errors in user input (bad paths, malformed files, wrong sizes) are printed as one clear line and exit 1;
argument mistakes exit 2 (argparse). Building the parser imports no torch: ``daflow --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys

import daflow
from daflow.cli import (
    analyze,
    degrade,
    demo,
    estimate,
    evaluate,
    pseudo_gt,
    restore,
    robustness,
    synth,
    train,
    viz,
)
from daflow.cli.common import add_threads, apply_threads, default_threads

__all__ = ["apply_threads", "build_parser", "default_threads", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="daflow",
        description="DA-Flow: degradation-aware optical flow estimation with diffusion models (arXiv 2603.23499).",
    )
    parser.add_argument("--version", action="version", version=f"daflow {daflow.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (demo, analyze, degrade, estimate, evaluate, pseudo_gt, restore, robustness, synth, train, viz):
        module.register(sub)
    add_threads(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        apply_threads(getattr(args, "threads", None))
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, OSError) as err:
        print(f"daflow {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"daflow {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
