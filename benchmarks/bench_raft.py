"""RAFT-large and SEA-RAFT-M forward passes: all-pairs vs windowed correlation, iterations, precision, sizes.

Each configuration runs in its own process, so peak memory is its own: peak RSS on CPU, peak allocated CUDA
memory on a GPU. Times are the best of N after one warm-up run (GPU times are synchronised).
Reference in the same run: the first configuration (RAFT all-pairs, 12 iterations, fp32); ratios are against it.

Run: .venv/bin/python benchmarks/bench_raft.py [--device cpu|cuda] [--repeats N] [--size HxW] [--suite raft|all]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time, torch
import daflow
from daflow.models.raft import InputPadder
model_name, mode, iters, repeats, h, w, device, amp = sys.argv[1:9]
iters, repeats, h, w, amp = int(iters), int(repeats), int(h), int(w), amp == "1"
dev = torch.device(device)
# mixed precision: official RAFT's float16 autocast for RAFT, bfloat16 for SEA-RAFT (its training's)
dtype = ("float16" if model_name == "raft" else "bfloat16") if amp else "float32"
model = daflow.load_model(model_name, random_init=True, corr_mode=mode, device=dev, dtype=dtype).module.eval()
x1, x2 = torch.rand(1, 3, h, w, device=dev) * 255, torch.rand(1, 3, h, w, device=dev) * 255
if model_name == "raft":
    x1, x2 = InputPadder(x1.shape).pad_images(x1, x2)

def run():
    return model(x1, x2, iters=iters)

def sync():
    if dev.type == "cuda":
        torch.cuda.synchronize()

times = []
with torch.no_grad():
    run(); sync()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for _ in range(repeats):
        t = time.perf_counter(); run(); sync(); times.append(time.perf_counter() - t)
mem = torch.cuda.max_memory_allocated() / 2**30 if dev.type == "cuda" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
print(json.dumps({"best": min(times), "median": sorted(times)[len(times) // 2], "mem_gb": mem,
                  "threads": torch.get_num_threads(),
                  "name": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu"}))
"""


def configs(suite: str, size: tuple[int, int], device: str):
    h, w = size
    out = [("raft", m, i, h, w, False) for m in ("all-pairs", "windowed") for i in (12, 20)]
    if device == "cuda":
        out += [
            ("raft", "all-pairs", 12, h, w, True),
            ("raft", "all-pairs", 12, 1080, 1920, False),
            ("raft", "windowed", 12, 1080, 1920, False),
        ]
    if suite == "all":
        # the pseudo-ground-truth teacher: spring-M runs 1080p inputs at 540x960; 4 (analysis) and 20 (training) iterations
        out += [("sea-raft-m", "all-pairs", i, 540, 960, False) for i in (4, 20)]
        if device == "cuda":
            out += [("sea-raft-m", "all-pairs", 20, 540, 960, True), ("sea-raft-m", "all-pairs", 4, 1080, 1920, False)]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--size", default="436x1024", help="RAFT input size HxW (default: Sintel's)")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--suite", default="raft", choices=("raft", "all"), help="'all' adds SEA-RAFT-M (the teacher)")
    args = ap.parse_args()
    h, w = (int(v) for v in args.size.split("x"))
    ref = None
    mem_name = "peak CUDA alloc" if args.device == "cuda" else "peak RSS"
    print(f"device {args.device}, best of {args.repeats} after a warm-up")
    for model, mode, iters, ch, cw, amp in configs(args.suite, (h, w), args.device):
        cmd = [
            sys.executable,
            "-c",
            CHILD,
            model,
            mode,
            str(iters),
            str(args.repeats),
            str(ch),
            str(cw),
            args.device,
            "1" if amp else "0",
        ]
        out = subprocess.run(cmd, capture_output=True, text=True)
        label = f"{model:10s} {cw}x{ch} {mode:9s} {iters:2d} it {'amp ' if amp else 'fp32'}"
        if out.returncode:
            print(f"{label}: FAILED ({out.stderr.strip().splitlines()[-1] if out.stderr.strip() else out.returncode})")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        ref = ref or r
        print(
            f"{label}: {r['best'] * 1e3:8.1f} ms (median {r['median'] * 1e3:.1f}), {mem_name} {r['mem_gb']:.2f} GB; "
            f"time x{r['best'] / ref['best']:.2f}, memory x{r['mem_gb'] / ref['mem_gb']:.2f} vs first  [{r['name']}]"
        )


if __name__ == "__main__":
    main()
