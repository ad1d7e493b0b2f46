"""Lifted DiT4SR forward (paper preset, random weights): time and peak memory per denoising step.

One step = one transformer call on a clip of F frames (the noisy latents and the LQ latents of every frame, null
text of 154 tokens), with the Q/K taps of blocks {3, 13, 16, 17} recorded, as DA-Flow runs it (§4.4).
Reference in the same run: the unlifted model on the same frames (``num_frames=1``, per-frame attention);
ratios are against it. Then the whole feature run of one chunk (VAE encode of the LQ frames + denoising with
taps) for 1 step (DA-Flow's fast mode) and 10 steps (the paper's), ratio against 1 step.
Needs a GPU for the paper preset (2.8 B parameters); ``--preset tiny`` runs on a CPU.

Run: python benchmarks/bench_dit4sr.py [--preset tiny] [--device cuda] [--dtype bf16] [--size HxW]... [--frames F]...
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
    ap.add_argument(
        "--size", action="append", help="image HxW (multiple of 16); repeatable (default 512x512, 448x1024)"
    )
    ap.add_argument("--frames", type=int, action="append", help="frames per clip; repeatable (default 1, 2, 3, 5)")
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
    frame_counts = args.frames or [1, 2, 3, 5]
    print(f"DiT4SR {args.preset} ({n_params / 1e6:.2f} M parameters), {args.dtype}, {name}, best of {args.repeats}")

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def timed(fn):
        """Best wall time of ``fn`` over the repeats (after one warm-up) and the peak GPU memory."""
        with torch.no_grad():
            fn()
            sync()
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                fn()
                sync()
                times.append(time.perf_counter() - t0)
        mem = torch.cuda.max_memory_allocated() / 2**30 if dev.type == "cuda" else float("nan")
        return min(times), mem

    sizes = args.size or ["512x512", "448x1024"]
    print("\n## one transformer call (one denoising step), lifted vs per-frame attention")
    for size in sizes:
        h, w = (int(v) for v in size.split("x"))
        for f in frame_counts:
            z = torch.randn(f, cfg.in_channels, h // 8, w // 8, device=dev, dtype=dtype)
            lq = torch.randn_like(z)
            text = torch.zeros(f, 154, cfg.joint_attention_dim, device=dev, dtype=dtype)
            pooled = torch.zeros(f, cfg.pooled_projection_dim, device=dev, dtype=dtype)
            rec = TapRecorder(TapSpec(blocks=tuple(b for b in (3, 13, 16, 17) if b < cfg.num_layers)))
            per_frame, _ = timed(lambda: (model(z, lq, text, pooled, 1000.0, num_frames=1, taps=rec), rec.pop()))
            lifted, mem = timed(lambda: (model(z, lq, text[:1], pooled[:1], 1000.0, num_frames=f, taps=rec), rec.pop()))
            tokens = f * (2 * (h // 16) * (w // 16) + 154)  # HQ + LQ + text tokens of every frame
            print(
                f"{w}x{h} F={f}: lifted {lifted * 1e3:8.1f} ms ({tokens} tokens per attention), per-frame "
                f"{per_frame * 1e3:8.1f} ms, x{lifted / per_frame:.2f}; peak {mem:.2f} GB"
            )

    print("\n## a whole chunk: VAE encode + denoising with taps, 1 step vs 10 steps")
    from daflow.models.backbone import DiffusionBackbone
    from daflow.models.taps import TapSpec as Spec

    backbone = DiffusionBackbone(model, DiffusionBackbone.from_preset(args.preset).vae.to(dev), _prompt(cfg))
    spec = Spec(blocks=tuple(b for b in (3, 13, 16, 17) if b < cfg.num_layers))
    for size in sizes:
        h, w = (int(v) for v in size.split("x"))
        frames = torch.rand(1, 3, 3, h, w, device=dev) * 255
        one, _ = timed(lambda: list(backbone.features(frames, taps=spec, steps=10, stop_after=0)))
        ten, mem = timed(lambda: list(backbone.features(frames, taps=spec, steps=10)))
        print(
            f"{w}x{h} F=3: 1 step {one * 1e3:8.1f} ms, 10 steps {ten * 1e3:8.1f} ms, x{ten / one:.2f}; peak {mem:.2f} GB"
        )


def _prompt(cfg):
    from daflow.models.prompt import zero_prompt

    return zero_prompt(cfg.joint_attention_dim, cfg.pooled_projection_dim)


if __name__ == "__main__":
    main()
