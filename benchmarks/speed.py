"""Seconds a pair and peak memory of the default flow model against OpenCV's DIS and the RAFT family, on a CPU.

    .venv/bin/python benchmarks/speed.py [--sizes 640x480,1280x720,1920x1080] [--models dis,dis-raft,...]
                                         [--dtypes float32,bfloat16] [--threads 2] [--repeats 3] [--json OUT.json]

Every (model, size) runs in a fresh process (so that its peak memory is its own): ``daflow.load_model`` (RAFT,
RAFT-small and SEA-RAFT-S with random weights: the time does not depend on the values), one warm-up pair, then the
best of ``--repeats`` runs over a synthetic clip of :data:`PAIRS` consecutive pairs at that size, in seconds a pair
(as in a video, where the default lends each frame's features to its second pair). Prints s/pair, pairs/s, the ratio
to DIS measured the same way, and the peak resident memory above the process's size after loading the model.
``--dtypes``: each network's row once per compute dtype (``--dtype``; DIS has none); whether the CPU has bfloat16
arithmetic (AMX, AVX512-BF16) is printed, since bfloat16 pays only there.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from daflow.models.catalog import names

NEEDS_WEIGHTS = "raft,raft-small,sea-raft-s,sea-raft-m"  # measured with random weights
CLASSICAL = names("classical")  # no network, so no compute dtype
PAIRS = 4  # consecutive pairs timed in one call, as in a video

CHILD = r"""
import json, resource, sys, time
import cv2, torch
threads, name, h, w, repeats = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
pairs, dtype = int(sys.argv[7]), sys.argv[8]
random_init = name in sys.argv[6].split(",")
torch.set_num_threads(threads); cv2.setNumThreads(threads)
import daflow
from daflow.data.synthetic import SyntheticConfig, render_clip
frames = render_clip(SyntheticConfig(height=h, width=w, num_frames=pairs + 1), 0).frames
model = daflow.load_model(name, random_init=random_init, dtype=dtype)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
model(frames[:2])
best = float("inf")
for _ in range(repeats):
    t = time.perf_counter(); model(frames); best = min(best, (time.perf_counter() - t) / pairs)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": best, "peak_mb": (peak - before) / 1024, "description": model.description}))
"""


def measure(name: str, size: tuple[int, int], threads: int, repeats: int, dtype: str = "float32") -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    argv = (threads, name, size[0], size[1], repeats, NEEDS_WEIGHTS, PAIRS, dtype)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, *map(str, argv)],
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
    ap.add_argument("--dtypes", default="float32", help="compute dtypes of the networks, comma-separated")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    info = open("/proc/cpuinfo").read().splitlines()
    cpu = next((ln.split(":", 1)[1].strip() for ln in info if ln.startswith("model name")), "?")
    flags = set(next((ln.split(":", 1)[1].split() for ln in info if ln.startswith("flags")), []))
    bf16 = sorted(flags & {"amx_bf16", "avx512_bf16"}) or ["none"]
    runs = f"best of {args.repeats} {PAIRS}-pair clips after one warm-up"
    print(f"{cpu} (bfloat16 arithmetic: {', '.join(bf16)}), {args.threads} threads, {runs}, one process per row\n")
    print("| size | model | s/pair | pairs/s | × DIS | peak memory above the loaded model |")
    print("|---|---|---|---|---|---|")
    record = {"cpu": cpu, "bfloat16_arithmetic": bf16, "threads": args.threads, "rows": []}
    dtypes = args.dtypes.split(",")
    for text in args.sizes.split(","):
        w, h = (int(v) for v in text.lower().split("x"))
        dis = None
        for name in args.models.split(","):
            for dtype in ["float32"] if name in CLASSICAL else dtypes:
                r = measure(name, (h, w), args.threads, args.repeats, dtype)
                label = name if dtype == "float32" else f"{name} ({dtype})"
                record["rows"].append({"size": text, "model": name, "dtype": dtype, **r})
                if "error" in r:
                    print(f"| {text} | {label} | – | – | – | {r['error']} |", flush=True)
                    continue
                dis = r["seconds"] if name == "dis" else dis
                ratio = f"{r['seconds'] / dis:.1f}" if dis else "–"
                s, mb = r["seconds"], r["peak_mb"]
                print(f"| {text} | {label} | {s:.3f} | {1 / s:.2f} | {ratio} | {mb:.0f} MB |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
