"""Lifted DiT4SR forward (paper preset, random weights): time and peak memory per denoising step.

One step = one transformer call on a clip of F frames (the noisy latents and the LQ latents of every frame, null
text of 154 tokens), with the Q/K taps of blocks {3, 13, 16, 17} recorded, as DA-Flow runs it (§4.4).
Reference in the same run: the unlifted model on the same frames (``num_frames=1``, per-frame attention);
ratios are against it. Needs a GPU for the paper preset (2.8 B parameters); ``--preset tiny`` runs on a CPU.

Run: python benchmarks/bench_dit4sr.py [--device cuda] [--dtype bf16] [--size HxW] [--frames 3] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import torch

from daflow.models.dit4sr import DiT4SRTransformer
from daflow.models.taps import TapRecorder, TapSpec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="paper", choices=("paper", "tiny"))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="bf16", choices=("bf16", "fp16", "fp32"))
    ap.add_argument("--size", action="append", help="image HxW (multiple of 16); repeatable (default 512x512, 448x1024)")
    ap.add_argument("--frames", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[args.dtype]
    dev = torch.device(args.device)
    torch.manual_seed(0)
    with dev:
        model = DiT4SRTransformer.from_config(args.preset).to(dtype).eval()
    cfg = model.config
    n_params = sum(p.numel() for p in model.parameters())
    name = torch.cuda.get_device_name() if dev.type == "cuda" else "cpu"
    print(f"DiT4SR {args.preset} ({n_params / 1e9:.2f} B parameters), {args.dtype}, {name}, F={args.frames}, best of {args.repeats}")

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    for size in args.size or ["512x512", "448x1024"]:
        h, w = (int(v) for v in size.split("x"))
        f = args.frames
        z = torch.randn(f, cfg.in_channels, h // 8, w // 8, device=dev, dtype=dtype)
        lq = torch.randn_like(z)
        text = torch.zeros(1, 154, cfg.joint_attention_dim, device=dev, dtype=dtype)
        pooled = torch.zeros(1, cfg.pooled_projection_dim, device=dev, dtype=dtype)
        ref = None
        for frames in (1, f):
            rec = TapRecorder(TapSpec())
            t_text = text.expand(f // frames, -1, -1) if frames > 1 else text.expand(f, -1, -1)
            t_pool = pooled.expand(f // frames, -1) if frames > 1 else pooled.expand(f, -1)
            times = []
            with torch.no_grad():
                model(z, lq, t_text, t_pool, 1000.0, num_frames=frames, taps=rec)
                sync()
                if dev.type == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    model(z, lq, t_text, t_pool, 1000.0, num_frames=frames, taps=rec)
                    sync()
                    times.append(time.perf_counter() - t0)
                    rec.pop()
            mem = torch.cuda.max_memory_allocated() / 2**30 if dev.type == "cuda" else float("nan")
            best = min(times)
            ref = ref or best
            tokens = f * (2 * (h // 16) * (w // 16) + 154) if frames > 1 else 2 * (h // 16) * (w // 16) + 154
            print(f"{w}x{h} {'lifted' if frames > 1 else 'per-frame':9s} ({tokens} tokens per attention): "
                  f"{best * 1e3:8.1f} ms per step for {f} frames, peak {mem:.2f} GB; x{best / ref:.2f} vs per-frame")


if __name__ == "__main__":
    main()
