"""One long frame folder through ``daflow degrade frames``: the whole command with ``--workers 1`` and ``--workers N``.

A 40-frame 436×1024 folder (Sintel's frame size; a synthetic clip rendered here, seeded) is degraded by the whole
command (start-up, reading, degradation, writing) for several run seeds (each seed draws other degradation
parameters, e.g. a stage-1 upscale that makes the later steps 2× dearer); the reference in the same run is
``--workers 1`` on the same folder and seed, and the outputs of both must be byte-identical.

Run: .venv/bin/python benchmarks/degrade_one_clip.py [--frames 40] [--size 436x1024] [--workers 2] [--seeds 0,1,2,3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(src: Path, out: Path, seed: int, workers: int) -> float:
    cmd = [sys.executable, "-m", "daflow.cli", "degrade", "frames", str(src), "-o", str(out), "--no-progress"]
    cmd += ["--seed", str(seed), "--workers", str(workers)]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t


def files(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(root.glob("*.png"))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--size", default="436x1024")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seeds", default="0,1,2,3")
    args = ap.parse_args()
    h, w = (int(v) for v in args.size.split("x"))
    from daflow.data.synthetic import SyntheticConfig, render_clip
    from daflow.files import write_image

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "clip"
        for i, frame in enumerate(render_clip(SyntheticConfig(height=h, width=w, num_frames=args.frames), 0).frames):
            write_image(src / f"frame_{i:04d}.png", frame)
        print(f"{args.frames} frames of {w}x{h}, whole `daflow degrade frames` command\n")
        print(f"| seed | workers 1: s (frames/s) | workers {args.workers}: s (frames/s) | speed-up | same bytes |")
        print("|---|---|---|---|---|")
        totals = [0.0, 0.0]
        for seed in (int(s) for s in args.seeds.split(",")):
            one, many = Path(tmp) / f"w1_{seed}", Path(tmp) / f"wn_{seed}"
            t1, tn = run(src, one, seed, 1), run(src, many, seed, args.workers)
            totals[0] += t1
            totals[1] += tn
            same = files(one) == files(many) and len(files(one)) == args.frames
            print(
                f"| {seed} | {t1:.1f} ({args.frames / t1:.2f}) | {tn:.1f} ({args.frames / tn:.2f}) | {t1 / tn:.2f} | "
                f"{'yes' if same else 'NO'} |",
                flush=True,
            )
        n = len(args.seeds.split(",")) * args.frames
        print(
            f"| all | {totals[0]:.1f} ({n / totals[0]:.2f}) | {totals[1]:.1f} ({n / totals[1]:.2f}) | "
            f"{totals[0] / totals[1]:.2f} | |"
        )


if __name__ == "__main__":
    main()
