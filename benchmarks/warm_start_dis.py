"""Does warm-starting the bundled RAFT*-tiny from DIS help on large motion?

Three held-out 256x256 `default` synthetic clips (seeds 3-5), degraded with `realbasicvsr`, exact ground truth;
EPE of zero flow, DIS on the LQ pair, RAFT*-tiny (12 iterations) and RAFT*-tiny with DIS as ``flow_init`` (RAFT's
warm start, DIS area-downsampled to 1/8). Reference in the same run: DIS.

    .venv/bin/python benchmarks/warm_start_dis.py
"""

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F

from daflow.data.degrade import degrade_clip, sample_params
from daflow.data.synthetic import SYNTHETIC_PRESETS, render_clip
from daflow.flow.metrics import flow_metrics
from daflow.models.bundled import bundled_path
from daflow.models.classical import classical_flow
from daflow.models.raft_weights import load_raft


def main() -> None:
    raft = load_raft(bundled_path("raft-star-tiny") / "raft.safetensors", small=True).eval()
    res: dict[str, list[float]] = {"zero flow": [], "DIS (LQ)": [], "RAFT*-tiny": [], "RAFT*-tiny from DIS": []}
    for seed in (3, 4, 5):
        cfg = dataclasses.replace(SYNTHETIC_PRESETS["default"], height=256, width=256, num_frames=2)
        clip = render_clip(cfg, seed)
        lq = degrade_clip(clip.frames, sample_params("realbasicvsr", 2, (256, 256), seed))
        gt = clip.flow[0]
        dis = classical_flow(lq[0], lq[1], "dis")
        a, b = (torch.from_numpy(f).permute(2, 0, 1)[None].float() for f in lq)
        init = F.interpolate(torch.from_numpy(dis).permute(2, 0, 1)[None], scale_factor=1 / 8, mode="area") / 8
        with torch.no_grad():
            plain = raft(a, b, iters=12).flow[0].permute(1, 2, 0).numpy()
            warm = raft(a, b, iters=12, flow_init=init).flow[0].permute(1, 2, 0).numpy()
        for label, flow in zip(res, (gt * 0, dis, plain, warm)):
            res[label].append(flow_metrics(flow, gt)["epe"])
    ref = np.mean(res["DIS (LQ)"])
    print("| model | EPE per clip | mean | ratio to DIS |\n|---|---|---|---|")
    for label, v in res.items():
        print(f"| {label} | {', '.join(f'{x:.2f}' for x in v)} | {np.mean(v):.3f} | {np.mean(v) / ref:.2f} |")


if __name__ == "__main__":
    main()
