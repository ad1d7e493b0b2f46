"""Seconds a pair and peak memory of the default flow model against OpenCV's DIS and the RAFT family, on a CPU.

    .venv/bin/python benchmarks/speed.py [--sizes 640x480,1280x720,1920x1080] [--models dis,dis-raft,...]
                                         [--threads 2] [--repeats 3] [--json OUT.json]

Every (model, size) runs in a fresh process (so that its peak memory is its own): ``daflow.load_model`` (RAFT,
RAFT-small and SEA-RAFT-S with random weights: the time does not depend on the values), one warm-up pair, then the
best of ``--repeats`` runs over a synthetic clip of :data:`PAIRS` consecutive pairs at that size, in seconds a pair
(as in a video, where the default lends each frame's features to its second pair). Prints s/pair, pairs/s, the ratio
to DIS measured the same way, and the peak resident memory above the process's size after loading the model.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

NEEDS_WEIGHTS = "raft,raft-small,sea-raft-s,sea-raft-m"  # measured with random weights
PAIRS = 4  # consecutive pairs timed in one call, as in a video

CHILD = r"""
import json, resource, sys, time
import cv2, torch
threads, name, h, w, repeats = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
pairs = int(sys.argv[7])
random_init = name in sys.argv[6].split(",")
torch.set_num_threads(threads); cv2.setNumThreads(threads)
import daflow
from daflow.data.synthetic import SyntheticConfig, render_clip
frames = render_clip(SyntheticConfig(height=h, width=w, num_frames=pairs + 1), 0).frames
model = daflow.load_model(name, random_init=random_init)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
model(frames[:2])
best = float("inf")
for _ in range(repeats):
    t = time.perf_counter(); model(frames); best = min(best, (time.perf_counter() - t) / pairs)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": best, "peak_mb": (peak - before) / 1024, "description": model.description}))
"""


def measure(name: str, size: tuple[int, int], threads: int, repeats: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, *map(str, (threads, name, size[0], size[1], repeats, NEEDS_WEIGHTS, PAIRS))],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="640x480,1280x720,1920x1080", help="WxH, comma-separated")
    ap.add_argument("--models", default="dis,dis-raft,raft-small,raft,sea-raft-s")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    runs = f"best of {args.repeats} {PAIRS}-pair clips after one warm-up"
    print(f"{cpu}, {args.threads} threads, {runs}, one process per row\n")
    print("| size | model | s/pair | pairs/s | × DIS | peak memory above the loaded model |")
    print("|---|---|---|---|---|---|")
    record = {"cpu": cpu, "threads": args.threads, "rows": []}
    for text in args.sizes.split(","):
        w, h = (int(v) for v in text.lower().split("x"))
        dis = None
        for name in args.models.split(","):
            r = measure(name, (h, w), args.threads, args.repeats)
            record["rows"].append({"size": text, "model": name, **r})
            if "error" in r:
                print(f"| {text} | {name} | – | – | – | {r['error']} |", flush=True)
                continue
            dis = r["seconds"] if name == "dis" else dis
            ratio = f"{r['seconds'] / dis:.1f}" if dis else "–"
            print(
                f"| {text} | {name} | {r['seconds']:.3f} | {1 / r['seconds']:.2f} | {ratio} | {r['peak_mb']:.0f} MB |",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
