"""DA-Flow inference: speed of the three flow modes, where the time goes, and (with data) their accuracy.

Modes on one 3-frame chunk (two flows): **single-step** (step 0 only: one DiT call), **step 9** (the whole 10-step
denoising, one flow from the last step) and **mean** (all 10 steps, each through the DPT heads and RAFT, flows
averaged). Reported: seconds per chunk, pairs (flows) per second, peak CUDA memory, and for the mean mode the share
of time in the DiT (VAE encode + denoising), the DPT heads and the hybrid RAFT (and, within it, RAFT's encoders,
which every step recomputes); the reference in the same process is
the single-step mode. With ``--data`` the same model is scored per step on a dataset (EPE of every step, of their
mean flow), which gives the accuracy side of the trade-off.

Run: python benchmarks/bench_daflow.py [--weights RUN/model --dit4sr ... --vae ...] [--preset tiny] [--size 436x1024]
     [--device cpu] [--iters 20] [--repeats 2] [--data SPEC]
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import torch

import daflow


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", help="a trained DA-Flow folder (default: random weights at --preset)")
    ap.add_argument("--dit4sr")
    ap.add_argument("--vae")
    ap.add_argument("--preset", default="tiny", choices=("tiny", "paper"))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="auto", choices=("auto", "bf16", "fp32"))
    ap.add_argument("--size", default="436x1024", help="frame HxW (default Sintel's 436x1024)")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument(
        "--data",
        help="dataset spec for the accuracy side (e.g. synthetic:default?n=16&size=64x64&degrade=realbasicvsr)",
    )
    ap.add_argument("--max-chunks", type=int, default=None)
    args = ap.parse_args()
    dev = torch.device(args.device)
    dtype = {
        "bf16": torch.bfloat16,
        "fp32": torch.float32,
        "auto": torch.bfloat16 if dev.type == "cuda" else torch.float32,
    }[args.dtype]
    flow_model = daflow.load_model(
        args.weights or "daflow",
        random_init=not args.weights,
        preset=args.preset,
        dit4sr=args.dit4sr,
        vae=args.vae,
        dtype=dtype,
        device=dev,
        iters=args.iters,
    )
    model = flow_model.module
    h, w = (int(v) for v in args.size.split("x"))
    name = torch.cuda.get_device_name() if dev.type == "cuda" else "cpu"
    print(
        f"DA-Flow {'from ' + args.weights if args.weights else args.preset + ' (random weights)'}, {name}, "
        f"DiT {dtype}, {w}x{h}, 3-frame chunk, {args.iters} iterations, best of {args.repeats}"
    )

    spent: dict[str, float] = defaultdict(float)

    def timed_method(obj, attr, key):
        original = getattr(obj, attr)

        def wrapper(*a, **k):
            sync()
            t0 = time.perf_counter()
            result = original(*a, **k)
            sync()
            spent[key] += time.perf_counter() - t0
            return result

        setattr(obj, attr, wrapper)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    timed_method(model, "diffusion_features", "DPT heads")
    timed_method(model, "refine", "hybrid RAFT")
    for encoder in (model.raft.fnet, model.raft.cnet):  # inside the hybrid RAFT's time, reported apart
        timed_method(encoder, "forward", "RAFT encoders")
    frames = torch.rand(1, 3, 3, h, w, device=dev) * 255
    modes = {"single-step (step 0)": [0], "step 9 of 10": [9], "mean of 10 steps": None}
    rows = []
    for label, steps in modes.items():
        best, shares = float("inf"), {}
        for _ in range(args.repeats + 1):  # the first run warms up
            spent.clear()
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            sync()
            t0 = time.perf_counter()
            with torch.no_grad():
                model(frames, steps=steps, iters=args.iters)
            sync()
            total = time.perf_counter() - t0
            if total < best:
                best, shares = total, dict(spent)
        mem = torch.cuda.max_memory_allocated() / 2**30 if dev.type == "cuda" else float("nan")
        shares["DiT (VAE + denoising)"] = best - sum(v for k, v in shares.items() if k != "RAFT encoders")
        rows.append((label, best, mem, shares))
    ref = rows[0][1]
    print(
        "\n| mode | s per chunk | pairs per s | peak memory | ratio | DiT | DPT heads | hybrid RAFT | of which encoders |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for label, t, mem, shares in rows:
        part = {k: 100 * v / t for k, v in shares.items()}
        print(
            f"| {label} | {t:.3f} | {2 / t:.2f} | {mem:.2f} GB | {t / ref:.2f} | {part['DiT (VAE + denoising)']:.0f} % | "
            f"{part.get('DPT heads', 0):.0f} % | {part.get('hybrid RAFT', 0):.0f} % | {part.get('RAFT encoders', 0):.0f} % |"
        )

    if args.data:
        from daflow.eval.benchmark import eval_sets_for, evaluate_model
        from daflow.eval.stepwise import per_step_table

        results = [
            evaluate_model(flow_model, e, max_samples=args.max_chunks, progress=False)
            for e in eval_sets_for(args.data, flow_model.chunk)
        ]
        print()
        print(per_step_table(results))


if __name__ == "__main__":
    main()
