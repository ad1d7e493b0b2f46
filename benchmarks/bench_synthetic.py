"""Speed of the exact-ground-truth synthetic clip renderer (a 3-frame 256x256 clip in well under 1 s).

Reference in the same process: the floor of the renderer's work, one cv2.remap per layer and frame.
Run: .venv/bin/python benchmarks/bench_synthetic.py
"""

from __future__ import annotations

import platform
import time

import cv2
import numpy as np
import torch

from daflow.data.synthetic import SyntheticConfig, render_clip


def best_of(fn, repeats=5):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times), float(np.median(times))


def main() -> None:
    print(
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, cv2 {cv2.__version__}"
    )
    render_clip("default", 0)  # warm the photo cache
    for size, frames in ((256, 3), (512, 3), (256, 8)):
        cfg = SyntheticConfig(height=size, width=size, num_frames=frames)
        clip = render_clip(cfg, 1)
        n_layers = len(clip.layers)
        tex = np.random.default_rng(0).random((512, 512, 3)).astype(np.float32)
        mx, my = np.meshgrid(np.arange(size, dtype=np.float32) * 0.9, np.arange(size, dtype=np.float32) * 0.9)
        ref_min, _ = best_of(lambda: [cv2.remap(tex, mx, my, cv2.INTER_LINEAR) for _ in range(n_layers * frames)])
        t_min, t_med = best_of(lambda: render_clip(cfg, 1))
        print(
            f"{frames} frames {size}x{size}, {n_layers} layers: render min {t_min * 1e3:.1f} ms (median {t_med * 1e3:.1f} ms); "
            f"remap floor {ref_min * 1e3:.1f} ms; ratio {t_min / ref_min:.1f}x"
        )


if __name__ == "__main__":
    main()
