"""Why a DiT's Q/K taps do or do not carry correspondence: per block and denoising step, the zero-shot EPE (hard
argmax, paper §4.3 Eq. 12) of each attention head alone and of all heads together (the paper's cost), the share of
queries of frame k whose best key in frame k+1 is the single most chosen key ("sink": 1/N for a one-to-one matching,
1.0 when every query picks the same key), and how often a query's best key in its own frame is its own token
("self": 1.0 for features that match by content and position).

    .venv/bin/python benchmarks/qk_diagnostics.py TRANSFORMER VAE \\
        [--data 'synthetic:large-motion?n=3&degrade=realbasicvsr&size=128x128&seed=500'] [--steps 0,5,9]

TRANSFORMER and VAE as ``daflow analyze --dit4sr/--vae`` take them. Prints a table (markdown) and the data's zero-flow
EPE.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from daflow.eval.analysis import zero_shot_flow
from daflow.models.backbone import DiffusionBackbone
from daflow.models.raft import InputPadder
from daflow.models.taps import TapSpec
from daflow.models.vae import TOKEN_STRIDE


def token_statistics(q: torch.Tensor, k: torch.Tensor) -> tuple[float, float]:
    """(sink share, self-match rate) of ``q``/``k`` ``[F, h, w, C]`` (module docstring)."""
    src, tgt = q[:-1].flatten(1, 2), k[1:].flatten(1, 2)
    best = torch.einsum("fnc,fmc->fnm", src, tgt).argmax(-1)  # [F-1, N]
    sink = max(torch.bincount(b, minlength=tgt.shape[1]).max().item() / b.numel() for b in best)
    own = torch.einsum("fnc,fmc->fnm", q.flatten(1, 2), k.flatten(1, 2)).argmax(-1)
    same = (own == torch.arange(own.shape[1])).float().mean().item()
    return sink, same


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("transformer")
    ap.add_argument("vae")
    ap.add_argument("--data", default="synthetic:large-motion?n=3&degrade=realbasicvsr&size=128x128&seed=500")
    ap.add_argument("--steps", default="0,5,9", help="denoising steps (of 10) to report")
    args = ap.parse_args()
    from daflow.data.specs import build_eval_sets

    torch.set_num_threads(2)
    backbone = DiffusionBackbone.from_pretrained(args.transformer, args.vae, None)
    cfg = backbone.transformer.config
    heads, dim = cfg.num_attention_heads, cfg.attention_head_dim
    dataset = build_eval_sets(args.data, num_frames=3, stride=2)[0].dataset
    blocks, wanted = list(range(cfg.num_layers)), [int(s) for s in args.steps.split(",")]
    spec = TapSpec(blocks=tuple(blocks), attention="attn", features=("q", "k"))
    epe: dict[tuple, list[float]] = {}
    stats: dict[tuple, list[tuple[float, float]]] = {}
    for i in range(len(dataset)):
        sample = dataset[i]
        frames = torch.from_numpy(np.ascontiguousarray(sample.frames)).permute(0, 3, 1, 2).float()
        gt = torch.from_numpy(np.ascontiguousarray(sample.flow)).permute(0, 3, 1, 2)
        padder = InputPadder(frames.shape, multiple=TOKEN_STRIDE)
        padded = padder.pad_images(frames)[0]
        size = tuple(padded.shape[-2:])
        for step in backbone.features(padded.unsqueeze(0), taps=spec, steps=10, shift=3.0, seed=i):
            if step.index not in wanted:
                continue
            for b in blocks:
                q, k = step.taps[b]["q"][0], step.taps[b]["k"][0]  # [F, h, w, C]
                for h in [*range(heads), "all"]:
                    part = slice(None) if h == "all" else slice(h * dim, (h + 1) * dim)
                    src, tgt = q[:-1, ..., part].contiguous(), k[1:, ..., part].contiguous()
                    flow = padder.unpad(zero_shot_flow(src, tgt, size, mode="hard"))
                    epe.setdefault((b, step.index, h), []).append((flow - gt).norm(dim=1).mean().item())
                stats.setdefault((b, step.index), []).append(token_statistics(q, k))
    zero = np.mean([np.linalg.norm(dataset[i].flow, axis=-1).mean() for i in range(len(dataset))])
    print(f"{args.transformer} on {args.data}: zero flow EPE {zero:.2f}\n")
    cols = [f"head {h}" for h in range(heads)] + ["all heads", "sink", "self"]
    print("| block | step | " + " | ".join(cols) + " |\n|" + "---|" * (len(cols) + 2))
    for b in blocks:
        for s in wanted:
            cells = [f"{np.mean(epe[(b, s, h)]):.1f}" for h in [*range(heads), "all"]]
            sink, same = np.mean(stats[(b, s)], axis=0)
            print(f"| {b} | {s} | " + " | ".join(cells) + f" | {sink:.2f} | {same:.2f} |")


if __name__ == "__main__":
    main()
