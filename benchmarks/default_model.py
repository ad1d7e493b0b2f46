"""Is the bundled default worth keeping? Held-out EPE on large motion, and real images.

Held-out synthetic clips (never trained on: the ``large-motion`` scene preset with its own seeds, not the
training mixture): 6 clips of 4 frames at 256×256 and 6 at 384×512, degraded with ``realbasicvsr`` (the paper's
pipeline) and, as a second table, with ``codec`` (real-codec strength). Per clip: the mean EPE over its 3 pairs, and
the share of the LQ frames' differences that the true motion explains (``held_out.motion_evidence``).
Real images: scikit-image's Middlebury-style motorcycle stereo pair (real camera, ground-truth disparity) at half
size (370×250), degraded with ``realbasicvsr`` seed 0 and, separately, squeezed through H.264 at ~60 bytes a frame
after a downscale to 176×144; EPE against the disparity (flow = (−d, 0)) and the warping error of
:mod:`daflow.eval.video_quality` (clean frames, DIS-visible pixels).

Reference rows in the same run: zero flow and DIS on the same degraded frames.

    .venv/bin/python benchmarks/default_model.py [--weights RUN/model/raft.safetensors] [--iters 8]
        [--with-daflow] [--extra LABEL=MODEL ...] [--sizes 256x256,384x512] [--json OUT.json]

``--extra`` adds a row for any model ``daflow.load_model`` takes (a name, or a ``daflow train refine`` run's
``model/`` folder, plain or ``--daflow``): the ablation rows of DA-Flow on the refiner and its controls.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from daflow.eval.video_quality import photometric_error, visible_mask
from daflow.flow.metrics import flow_metrics
from held_out import MIN_MOTION_EVIDENCE, SEEDS, held_out_clip, motion_evidence, motorcycle


def estimators(
    weights: str | None, iters: int | None, with_daflow: bool, ablation: bool = False, extra: tuple[str, ...] = ()
) -> dict:
    import daflow
    from daflow.models.refine import Fallback

    out = {
        "zero flow": None,
        "DIS (LQ)": daflow.load_model("dis"),
        "RAFT*-tiny": daflow.load_model("raft-star-tiny"),
    }
    if ablation:
        variants = {
            "DIS->RAFT, 1 level, no polish": {"levels": 1, "polish_rounds": 0, "fallback": None},
            "DIS->RAFT, coarse to fine, no polish": {"polish_rounds": 0, "fallback": None},
            "DIS->RAFT, coarse to fine, polish": {"polish_rounds": 2, "fallback": None},
            "DIS->RAFT, polish, DIS kept (m5 k9)": {"polish_rounds": 2, "fallback": Fallback(5.0)},
            "DIS->RAFT, polish, DIS kept (r0.6 m2 k15)": {"polish_rounds": 2, "fallback": Fallback(2.0, 0.6, 15)},
        }
        for label, options in variants.items():
            out[label] = daflow.load_model("dis-raft", weights=weights, iters=iters, refiner=options)
    out["DIS->RAFT (default)"] = daflow.load_model("dis-raft", weights=weights, iters=iters)
    if with_daflow:
        out["DA-Flow-tiny"] = daflow.load_model("daflow-tiny")  # single-step mode, 3-frame chunks
    for item in extra:
        label, sep, model = item.partition("=")
        if not sep or not label or not model:
            raise SystemExit(f"--extra takes LABEL=MODEL, got {item!r}")
        out[label] = daflow.load_model(model)
    return out


def flows(est, lq: np.ndarray) -> np.ndarray:
    if est is None:
        return np.zeros((len(lq) - 1, *lq.shape[1:3], 2), np.float32)
    if est.pairs is None:  # DA-Flow: the whole clip in its chunks
        return est(lq)
    t = torch.from_numpy(lq).permute(0, 3, 1, 2).float()  # pairwise: every pair in one batch
    return est.pairs(t[:-1], t[1:]).permute(0, 2, 3, 1).numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", help="refiner weights (default: the bundled dis-raft)")
    ap.add_argument("--iters", type=int)
    ap.add_argument("--with-daflow", action="store_true")
    ap.add_argument("--ablation", action="store_true", help="also the refiner with one level / without the polish")
    ap.add_argument("--extra", action="append", default=[], metavar="LABEL=MODEL", help="another model's row")
    ap.add_argument("--sizes", default="256x256,384x512")
    ap.add_argument("--degrades", default="realbasicvsr,codec")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(2)
    ests = estimators(args.weights, args.iters, args.with_daflow, args.ablation, tuple(args.extra))
    record: dict = {"synthetic": {}, "real": {}}
    for degrade in args.degrades.split(","):
        for size in [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]:
            key = f"{degrade} {size[0]}x{size[1]}"
            rows = {name: [] for name in ests}
            seconds = {name: 0.0 for name in ests}
            evidence = []
            for seed in SEEDS:
                _, lq, gt = held_out_clip(size, seed, degrade)
                evidence.append(motion_evidence(lq, gt))
                for name, est in ests.items():
                    t = time.perf_counter()
                    f = flows(est, lq)
                    seconds[name] += time.perf_counter() - t
                    rows[name].append(float(np.mean([flow_metrics(f[k], gt[k])["epe"] for k in range(len(gt))])))
            record["synthetic"][key] = {
                "epe": rows,
                "seconds_per_pair": {n: s / (3 * len(SEEDS)) for n, s in seconds.items()},
                "motion_evidence": evidence,
            }
            ref = np.mean(rows["DIS (LQ)"])
            print(f"\n### held-out large motion, {key}, EPE per clip (seeds {SEEDS[0]}-{SEEDS[-1]})\n")
            print("| model | per clip | mean | / DIS | s/pair |\n|---|---|---|---|---|")
            for name, v in rows.items():
                print(
                    f"| {name} | {', '.join(f'{x:.2f}' for x in v)} | {np.mean(v):.2f} | {np.mean(v) / ref:.2f} | "
                    f"{seconds[name] / (3 * len(SEEDS)):.2f} |"
                )
            print(f"| motion evidence in the LQ frames | {', '.join(f'{x:.2f}' for x in evidence)} | | | |")
            blind = [seed for seed, e in zip(SEEDS, evidence) if e < MIN_MOTION_EVIDENCE]
            if blind:
                print(f"\nno evidence of the true motion in the LQ frames (< {MIN_MOTION_EVIDENCE}): seeds {blind}")
    print("\n### real stereo pair (motorcycle, ground-truth disparity)\n")
    print("| input | model | EPE | warping error |\n|---|---|---|---|")
    for kind in ("realbasicvsr", "h264-480bits"):
        clean, lq, gt, valid = motorcycle(kind)
        vis = visible_mask(clean[0], clean[1])
        for name, est in ests.items():
            f = flows(est, lq)
            epe = float(np.linalg.norm(f[0] - gt[0], axis=-1)[valid[0]].mean())
            we = photometric_error(clean[0], clean[1], f[0], vis)
            record["real"].setdefault(kind, {})[name] = {"epe": epe, "warp_error": we}
            print(f"| {kind} {lq.shape[2]}x{lq.shape[1]} | {name} | {epe:.2f} | {we:.2f} |")
    if args.json:
        args.json.write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
