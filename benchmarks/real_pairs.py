"""Real image pairs with exact ground truth as a ``labeled:`` dataset, for ``daflow evaluate`` and ``daflow robustness``.

    .venv/bin/python benchmarks/real_pairs.py OUT     # then --data 'labeled:OUT/clips?labels=OUT/labels'

- ``motorcycle``: scikit-image's stereo pair at 370×250 with its ground-truth disparity ``d`` (flow left → right
  ``(−d, 0)``; unknown disparities invalid);
- ``aloe``: Middlebury's Aloe (``aloeL.jpg``, ``aloeR.jpg``, ``aloeGT.png`` of Debian's ``opencv-doc``: full-size
  disparity in pixels, 0 unknown), at half size (641×555, disparities halved);
- ``graf``: Mikolajczyk's Graffiti 1 → 3 (``graf1.png``, ``graf3.png``) with the homography ``H1to3p.xml``: the flow
  is ``H(x) − x`` where ``H(x)`` lands inside frame 3; at half size (400×320).

The opencv-doc pairs are found as ``benchmarks/real_footage.py`` finds its videos (``$DAFLOW_OPENCV_DOC`` or the
installed package); without them only the motorcycle pair is written. Writes ``OUT/clips/<name>/{0,1}.png`` and
``OUT/labels/<name>/0.flo`` (invalid pixels as ``.flo`` marks them).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import cv2
import numpy as np

from daflow.files import write_image
from daflow.flow.io import write_flow
from held_out import motorcycle


def _opencv_data() -> Path | None:
    roots = [Path(os.environ["DAFLOW_OPENCV_DOC"])] if os.environ.get("DAFLOW_OPENCV_DOC") else []
    roots.append(Path("/"))
    for root in roots:
        folder = root / "usr/share/doc/opencv-doc/examples/data"
        if (folder / "aloeL.jpg").is_file() and (folder / "graf1.png").is_file():
            return folder
    return None


def _rgb(path: Path) -> np.ndarray:
    return np.ascontiguousarray(cv2.imread(str(path))[:, :, ::-1])


def aloe(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    left, right = _rgb(folder / "aloeL.jpg"), _rgb(folder / "aloeR.jpg")
    disp = cv2.imread(str(folder / "aloeGT.png"), cv2.IMREAD_UNCHANGED).astype(np.float32)
    size = (left.shape[1] // 2, left.shape[0] // 2)
    frames = [cv2.resize(x, size, interpolation=cv2.INTER_AREA) for x in (left, right)]
    d = cv2.resize(disp, size, interpolation=cv2.INTER_NEAREST) / 2
    valid = cv2.resize((disp > 0).astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    return np.stack(frames), np.stack([-d, np.zeros_like(d)], -1), valid


def graf(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a, b = _rgb(folder / "graf1.png"), _rgb(folder / "graf3.png")
    text = (folder / "H1to3p.xml").read_text()
    h13 = np.array(text.split("<data>")[1].split("</data>")[0].split(), np.float64).reshape(3, 3)
    scale = np.diag([0.5, 0.5, 1.0])
    h = scale @ h13 @ np.linalg.inv(scale)  # the same homography between the half-size frames
    size = (a.shape[1] // 2, a.shape[0] // 2)
    frames = [cv2.resize(x, size, interpolation=cv2.INTER_AREA) for x in (a, b)]
    ys, xs = np.mgrid[0 : size[1], 0 : size[0]].astype(np.float64)
    p = h @ np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    u, v = (p[0] / p[2]).reshape(xs.shape), (p[1] / p[2]).reshape(xs.shape)
    valid = (u >= 0) & (u <= size[0] - 1) & (v >= 0) & (v <= size[1] - 1)
    return np.stack(frames), np.stack([u - xs, v - ys], -1).astype(np.float32), valid


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    clean, _, flow, valid = motorcycle("realbasicvsr")
    pairs = {"motorcycle": (clean, flow[0], valid[0])}
    folder = _opencv_data()
    if folder is None:
        print("opencv-doc not found (apt-get download opencv-doc; dpkg -x; DAFLOW_OPENCV_DOC=DIR): motorcycle only")
    else:
        pairs["aloe"], pairs["graf"] = aloe(folder), graf(folder)
    for name, (frames, f, v) in pairs.items():
        for i, frame in enumerate(frames):
            write_image(args.out / "clips" / name / f"{i}.png", frame)
        write_flow(args.out / "labels" / name / "0.flo", f, v)
        print(
            f"{name}: {frames.shape[2]}x{frames.shape[1]}, {100 * v.mean():.0f}% valid, |flow| max {np.abs(f[v]).max():.1f}"
        )
    print(f"--data 'labeled:{args.out / 'clips'}?labels={args.out / 'labels'}'")
    sys.exit(0)


if __name__ == "__main__":
    main()
