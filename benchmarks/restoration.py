"""Video restoration at our scale: does ``daflow restore`` make degraded video better than its input?

Three sets, each clip restored by ``daflow.restoration.restore_video`` (the code path of ``daflow restore``):

- ``synthetic``: four held-out 7-frame 128×128 clips (``tiny`` scene preset, seeds 8101-8104), ``realbasicvsr``;
- ``real``: real footage (:mod:`real_footage`: five videos of Debian's ``opencv-doc``), 5-frame 128×128 crops,
  ``realbasicvsr``;
- ``codec``: the same real footage at 176×144 through H.264 at 800 bits a frame (real codec damage only).

Rows: the LQ input, each restorer setting (the default, ``RestoreSettings()``; with a self-ensemble of 1 and 4
instead of 8; unguided; without the degradation gate; without the temporal prefilter; the one-step DiT alone; the
full 10-step sampler; the temporal filter alone, with the default flow), the control (the same fidelity head trained blind to the diffusion
output, ``--blind-head``, made by ``benchmarks/fidelity_control.py``, run in the default's path unguided: compare it
with "default, unguided" for what the diffusion prior adds), and the HQ clip. Scores: PSNR and SSIM against HQ, E*warp
(Lai et al.; flow and occlusion of DIS on the HQ clip, the same pixels for every row), seconds per frame. The real
sets are skipped, with how to get the files, when the footage is not found.

    .venv/bin/python benchmarks/restoration.py [--sets synthetic,real,codec] [--figure docs/figures/restoration.png]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import daflow
from daflow.api import load_backbone
from daflow.data.degrade import degrade_clip, sample_params
from daflow.data.synthetic import SYNTHETIC_PRESETS, render_clip
from daflow.data.video import FrameSource
from daflow.files import write_image
from daflow.models.classical import classical_flow
from daflow.restoration import RestoreSettings, restore_video
from daflow.restoration.consistency import ewarp, psnr, ssim
from real_footage import HOW, find_videos, real_clips

SETTINGS = {
    "default (RestoreSettings())": RestoreSettings(),
    "default without the self-ensemble (ensemble 1)": RestoreSettings(ensemble=1),
    "default, self-ensemble of 4": RestoreSettings(ensemble=4),
    "default, unguided": RestoreSettings(guidance=0.0),
    "default without the degradation gate (--no-gate)": RestoreSettings(gate=False),
    "no prefilter, one-step DiT + video head, unguided": RestoreSettings(prefilter=False, guidance=0.0),
    "one-step DiT alone, unguided (no prefilter, no head)": RestoreSettings(
        prefilter=False, guidance=0.0, fidelity=False
    ),
    "full 10-step sampler, guided w 0.2 (no prefilter)": RestoreSettings(prefilter=False, sampler="full", guidance=0.2),
    "temporal filter (dis-raft flow)": RestoreSettings(method="temporal"),
}
BLIND = "control: fidelity head blind to the diffusion output"
# the control's settings: the default's, unguided (the blind head never sees the DiT's output, which guidance steers)
BLIND_SETTINGS = dataclasses.replace(RestoreSettings(), guidance=0.0)


def synthetic_clips() -> list[tuple[str, np.ndarray, np.ndarray]]:
    out = []
    for seed in (8101, 8102, 8103, 8104):
        hq = render_clip(dataclasses.replace(SYNTHETIC_PRESETS["tiny"], num_frames=7), seed).frames
        out.append((str(seed), hq, degrade_clip(hq, sample_params("realbasicvsr", 7, hq.shape[1:3], seed))))
    return out


def run_set(clips, settings: dict, backbone, flow_model, blind=None) -> tuple[dict, dict]:
    """Mean (E*warp, PSNR, SSIM, s/frame) per row over ``clips``, and the middle frame of the first clip per row."""
    rows: dict[str, list] = {}
    shown: dict[str, np.ndarray] = {}
    for _, hq, lq in clips:
        n = len(hq)
        fw = np.stack([classical_flow(hq[k], hq[k + 1]) for k in range(n - 1)])
        bw = np.stack([classical_flow(hq[k + 1], hq[k]) for k in range(n - 1)])

        def score(frames: np.ndarray, seconds: float) -> tuple[float, ...]:
            return 1000 * ewarp(frames, fw, bw), psnr(frames, hq), ssim(frames, hq), seconds / n

        rows.setdefault("LQ input", []).append(score(lq, 0.0))
        shown.setdefault("LQ input", lq[n // 2])
        with tempfile.TemporaryDirectory() as tmp:
            for k, f in enumerate(lq):
                write_image(Path(tmp) / "lq" / f"frame_{k:04d}.png", f)
            source = FrameSource(Path(tmp) / "lq")
            for r, (label, s) in enumerate(settings.items()):
                out = Path(tmp) / f"out_{r}"
                t = time.perf_counter()
                restore_video(backbone, source, out, s, flow_estimator=flow_model.clip, progress=False)
                restored = FrameSource(out / "frames").read(0, n)
                rows.setdefault(label, []).append(score(restored, time.perf_counter() - t))
                shown.setdefault(label, restored[n // 2])
            if blind is not None:  # the default's path, unguided, with the blind head in place of the shipped one
                shipped, backbone.fidelity = backbone.fidelity, blind
                try:
                    t = time.perf_counter()
                    out = Path(tmp) / "out_blind"
                    restore_video(backbone, source, out, BLIND_SETTINGS, flow_estimator=flow_model.clip, progress=False)
                    restored = FrameSource(out / "frames").read(0, n)
                finally:
                    backbone.fidelity = shipped
                rows.setdefault(BLIND, []).append(score(restored, time.perf_counter() - t))
                shown.setdefault(BLIND, restored[n // 2])
        rows.setdefault("HQ (reference)", []).append(score(hq, 0.0))
        shown.setdefault("HQ (clean)", hq[n // 2])
    return {k: np.mean(v, axis=0).tolist() for k, v in rows.items()}, shown


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", default="synthetic,real,codec")
    ap.add_argument("--rows", help="semicolon-separated row labels to run (default: all)")
    ap.add_argument("--figure", type=Path, help="write input / restored (default) / clean of each set's first clip")
    ap.add_argument("--json", type=Path, help="write the table as JSON here")
    ap.add_argument("--blind-head", type=Path, help="the control head folder (benchmarks/fidelity_control.py)")
    ap.add_argument("--head", type=Path, help="a fidelity head folder to use instead of the bundled restorer's")
    args = ap.parse_args()
    torch.set_num_threads(2)
    backbone, note = load_backbone(bundled_fallback=True)
    if args.head is not None:
        from daflow.models.fidelity import load_fidelity

        backbone.fidelity = load_fidelity(args.head)
        note += f"; fidelity head {args.head}"
    print(f"restorer: {note}")
    flow_model = daflow.load_model("dis-raft")
    settings = {k: v for k, v in SETTINGS.items() if not args.rows or k in args.rows.split(";")}
    blind = None
    if args.blind_head is not None:
        from daflow.models.fidelity import load_fidelity

        blind = load_fidelity(args.blind_head)
    record, tiles = {}, []
    for name in args.sets.split(","):
        if name == "synthetic":
            clips, what = synthetic_clips(), "4 held-out 7-frame 128x128 synthetic clips, realbasicvsr"
        elif find_videos() is None:
            print(f"\n### {name}: skipped ({HOW})")
            continue
        elif name == "real":
            clips, what = real_clips("realbasicvsr"), "5 real 5-frame 128x128 crops (opencv-doc videos), realbasicvsr"
        else:
            clips, what = real_clips("codec"), "5 real 5-frame 176x144 clips (opencv-doc videos), H.264 800 bits/frame"
        table, shown = run_set(clips, settings, backbone, flow_model, blind)
        record[name] = table
        base = table["LQ input"]
        print(f"\n### {name}: {what}\n")
        print("| restoration | E*warp | PSNR | SSIM | ΔPSNR | ΔSSIM | s/frame |\n|---|---|---|---|---|---|---|")
        for label, (e, p, s, sec) in table.items():
            print(f"| {label} | {e:.3f} | {p:.2f} | {s:.3f} | {p - base[1]:+.2f} | {s - base[2]:+.3f} | {sec:.2f} |")
        default = next(iter(settings), BLIND if blind is not None else "LQ input")
        tiles += [(f"{name}: input", shown["LQ input"]), (f"{name}: restored", shown[default])]
        tiles.append((f"{name}: clean", shown["HQ (clean)"]))
    if args.figure is not None and tiles:
        from daflow.flow.viz import write_panel

        write_panel(args.figure, tiles, ncols=3, height=192)
    if args.json is not None:
        args.json.write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
