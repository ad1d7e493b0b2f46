"""RAFT-large forward at 436x1024 (padded to 440x1024) on CPU: all-pairs vs windowed correlation, 12 and 20
iterations; wall time (best of N) and peak RSS, each configuration in its own process.
Reference in the same run: the all-pairs 12-iteration configuration (ratios are against it).
Run: .venv/bin/python benchmarks/bench_raft.py [--repeats N] [--size HxW]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time, torch
from daflow.models.raft import RAFT, InputPadder
mode, iters, repeats, h, w = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
torch.manual_seed(0)
model = RAFT(corr_mode=mode).eval()
x1, x2 = torch.rand(1, 3, h, w) * 255, torch.rand(1, 3, h, w) * 255
pad = InputPadder(x1.shape)
x1, x2 = pad.pad_images(x1, x2)
times = []
with torch.no_grad():
    for _ in range(repeats):
        t = time.perf_counter(); model(x1, x2, iters=iters); times.append(time.perf_counter() - t)
print(json.dumps({"best": min(times), "median": sorted(times)[len(times) // 2],
                  "rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "threads": torch.get_num_threads()}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--size", default="436x1024")
    args = ap.parse_args()
    h, w = (int(v) for v in args.size.split("x"))
    ref = None
    print(f"RAFT-large, {w}x{h}, CPU, best of {args.repeats}")
    for mode in ("all-pairs", "windowed"):
        for iters in (12, 20):
            out = subprocess.run([sys.executable, "-c", CHILD, mode, str(iters), str(args.repeats), str(h), str(w)],
                                 capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            ref = ref or r
            print(f"{mode:9s} {iters:2d} iters: {r['best']:.2f} s (median {r['median']:.2f}), peak RSS {r['rss_gb']:.2f} GB, "
                  f"{r['threads']} threads; time x{r['best'] / ref['best']:.2f}, memory x{r['rss_gb'] / ref['rss_gb']:.2f} vs all-pairs 12")


if __name__ == "__main__":
    main()
