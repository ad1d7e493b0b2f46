"""RAFT-large on a 1080p frame pair: peak memory and time of each correlation mode, side by side in one run.

Each mode runs in its own process (so its peak RSS is its own) on the same seeded weights and frames: two smooth
random textures, the second shifted by (12, −7) px. The reference is all-pairs (the official RAFT's volume, equal to the
official code's output to 1e-4 px by ``tests/test_official_parity.py``); every other mode's flow is compared with it.

Run: OMP_NUM_THREADS=2 .venv/bin/python benchmarks/corr_1080p.py [--iters 4] [--repeats 2] [--size 1080x1920]
        [--modes all-pairs,windowed,lean,lean:1e12]     (lean:1e12 stores levels 1-3, only level 0 on the fly)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CHILD = r"""
import json, resource, sys, time, numpy as np, torch
import daflow
from daflow.models.raft import InputPadder
mode, iters, repeats, h, w, out = sys.argv[1:7]
iters, repeats, h, w = int(iters), int(repeats), int(h), int(w)
mode, _, cap = mode.partition(":")  # lean:ENTRIES sets the stored-volume budget (lean_direct_levels)
if cap:
    import daflow.models.corr as corr
    corr.LEAN_MAX_STORED_ENTRIES = int(float(cap))
model = daflow.load_model("raft", random_init=True, corr_mode=mode).module.eval()
g = torch.Generator().manual_seed(1)
tex = torch.nn.functional.interpolate(torch.rand(1, 3, h // 16 + 2, w // 16 + 2, generator=g), size=(h + 32, w + 32),
                                      mode="bicubic", align_corners=False) * 200 + 25
x1, x2 = tex[..., 16:16 + h, 16:16 + w], tex[..., 23:23 + h, 4:4 + w]  # content moves by (12, -7)
x1, x2 = InputPadder(x1.shape).pad_images(x1, x2)
times = []
with torch.no_grad():
    for _ in range(repeats):
        t = time.perf_counter(); flow = model(x1, x2, iters=iters).flow; times.append(time.perf_counter() - t)
np.save(out, flow[0].numpy())
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
print(json.dumps({"best": min(times), "rss_gb": rss, "threads": torch.get_num_threads()}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iters", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=2, help="timed runs per mode (best is reported)")
    ap.add_argument("--size", default="1080x1920", help="HxW (default 1080x1920)")
    ap.add_argument("--modes", default="all-pairs,windowed,lean,lean:1e12")
    args = ap.parse_args()
    h, w = (int(v) for v in args.size.split("x"))
    modes = args.modes.split(",")
    print(f"RAFT-large, {w}x{h}, {args.iters} iterations, best of {args.repeats}, one process per mode (CPU)\n")
    print("| correlation | time (s) | peak RSS (GB) | time / all-pairs | max abs flow diff vs all-pairs (px) |")
    print("|---|---|---|---|---|")
    ref_time, ref_flow = None, None
    with tempfile.TemporaryDirectory() as tmp:
        for mode in modes:
            out = Path(tmp) / f"{mode}.npy"
            cmd = [sys.executable, "-c", CHILD, mode, str(args.iters), str(args.repeats), str(h), str(w), str(out)]
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode:
                print(
                    f"| {mode} | FAILED: {res.stderr.strip().splitlines()[-1] if res.stderr.strip() else res.returncode} |"
                )
                continue
            r = json.loads(res.stdout.strip().splitlines()[-1])
            flow = np.load(out)
            if mode == "all-pairs":
                ref_time, ref_flow = r["best"], flow
            ratio = f"{r['best'] / ref_time:.2f}" if ref_time else "–"
            diff = f"{np.abs(flow - ref_flow).max():.1e}" if ref_flow is not None else "–"
            print(f"| {mode} | {r['best']:.1f} | {r['rss_gb']:.2f} | {ratio} | {diff} |", flush=True)


if __name__ == "__main__":
    main()
