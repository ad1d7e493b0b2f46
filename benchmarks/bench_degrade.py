"""Degradation throughput at 436x1024 (Sintel size) with the time split by stage.

Target: the whole degraded Sintel training set (both passes, 2 x 1,064 frames) in under 10 minutes on 2
cores, i.e. >= 3.5 frames/s with 2 workers. Reference in the same process: reading + writing the frames as PNG
(the I/O floor every mirror run pays).
Run: .venv/bin/python benchmarks/bench_degrade.py [--clips N] [--frames F] [--preset P]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import cv2

from daflow.data.degrade import degrade_clip, sample_params
from daflow.data.synthetic import SyntheticConfig, render_clip
from daflow.files import read_image, write_image


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--clips", type=int, default=8, help="clips (seeds) to average over")
    ap.add_argument("--frames", type=int, default=10, help="frames per clip")
    ap.add_argument("--preset", default="realbasicvsr")
    args = ap.parse_args()
    cv2.setNumThreads(1)  # one worker's view; the mirror runs one such process per core
    print(f"machine: {platform.machine()}, cv2 {cv2.__version__}, 1 thread per worker; preset {args.preset}")
    clip = render_clip(SyntheticConfig(height=436, width=1024, num_frames=args.frames), 0).frames
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    for seed in range(args.clips):
        degrade_clip(clip, sample_params(args.preset, args.frames, (436, 1024), seed), timings=timings)
    total = time.perf_counter() - t0
    n = args.clips * args.frames
    with tempfile.TemporaryDirectory() as tmp:
        t1 = time.perf_counter()
        for i, f in enumerate(clip):
            write_image(Path(tmp) / f"{i}.png", f)
            read_image(Path(tmp) / f"{i}.png")
        io_per_frame = (time.perf_counter() - t1) / len(clip)
    per_frame = total / n
    print(
        f"{n} frames: {per_frame * 1e3:.0f} ms/frame = {1 / per_frame:.2f} frames/s per worker "
        f"(PNG read+write floor {io_per_frame * 1e3:.0f} ms/frame; ratio {per_frame / io_per_frame:.1f}x)"
    )
    for k, v in sorted(timings.items(), key=lambda kv: -kv[1]):
        print(f"  {k:9s} {v / n * 1e3:7.1f} ms/frame  {100 * v / total:5.1f} %")
    sintel = 2 * 1064 * (per_frame + io_per_frame) / 2
    print(f"estimated degraded Sintel training set (2 x 1064 frames, 2 workers): {sintel / 60:.1f} min (target < 10)")


if __name__ == "__main__":
    main()
