"""Real footage for the benchmarks: crops of the videos Debian's ``opencv-doc`` package ships, degraded.

Not in this repository and never committed. Get them once (any Debian/Ubuntu machine, no root needed)::

    apt-get download opencv-doc && dpkg -x opencv-doc_*.deb opencv-doc-root
    export DAFLOW_OPENCV_DOC=$PWD/opencv-doc-root

:func:`find_videos` looks in ``$DAFLOW_OPENCV_DOC`` (the ``dpkg -x`` folder, or any folder holding the files), then
in ``/usr/share/doc/opencv-doc`` (the installed package), for ``vtest.avi``, ``tree.avi``, ``Megamind.avi``
(``examples/data/``) and ``box.mp4(.gz)``, ``cup.mp4(.gz)`` (``opencv4/html/``; gzipped files are read through a
decompressed copy in a temporary folder).

Two sets, both from fixed frames of each video (:data:`CLIPS`):

- :func:`real_clips` ``("realbasicvsr")``: ``frames`` consecutive frames, area-resized so the short side is 144 px,
  centre-cropped to 128×128, degraded with the project's ``realbasicvsr`` pipeline (seed = the clip's index);
- :func:`real_clips` ``("codec")``: the same frames resized to 176×144 (QCIF) and squeezed through H.264 at
  :data:`CODEC_BITS` bits a frame (the project's ``video_compress``): real footage, real codec damage only.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np

# (file, first frame): frames with visible motion in each video
CLIPS = (("vtest.avi", 100), ("tree.avi", 60), ("Megamind.avi", 40), ("box.mp4", 120), ("cup.mp4", 60))
CODEC_BITS = 800
HOW = (
    "real footage not found: run `apt-get download opencv-doc && dpkg -x opencv-doc_*.deb DIR` and set "
    "DAFLOW_OPENCV_DOC=DIR (or install the opencv-doc package)"
)


def find_videos() -> dict[str, Path] | None:
    """``{file name: path}`` of the five videos, or None when any is missing (see the module docstring)."""
    roots = [Path(os.environ["DAFLOW_OPENCV_DOC"])] if os.environ.get("DAFLOW_OPENCV_DOC") else []
    roots.append(Path("/usr/share/doc/opencv-doc"))
    for root in roots:
        if not root.is_dir():
            continue
        found: dict[str, Path] = {}
        for name, _ in CLIPS:
            hits = sorted(root.rglob(name)) or sorted(root.rglob(name + ".gz"))
            if hits:
                found[name] = hits[0]
        if len(found) == len(CLIPS):
            return found
    return None


def _read(path: Path, start: int, count: int) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        if path.suffix == ".gz":
            plain = Path(tmp) / path.stem
            with gzip.open(path, "rb") as src, open(plain, "wb") as dst:
                shutil.copyfileobj(src, dst)
            path = plain
        cap = cv2.VideoCapture(str(path))
        cap.set(cv2.CAP_PROP_POS_FRAMES, start)
        frames = []
        for _ in range(count):
            ok, frame = cap.read()
            if not ok:
                raise ValueError(f"{path}: fewer than {start + count} frames")
            frames.append(frame[:, :, ::-1])
        cap.release()
    return np.stack(frames)


def _resize_crop(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area-resize so the frame covers ``size`` (W, H), then centre-crop to it."""
    h, w = frame.shape[:2]
    s = max(size[0] / w, size[1] / h)
    nw, nh = max(size[0], round(w * s)), max(size[1], round(h * s))
    small = cv2.resize(np.ascontiguousarray(frame), (nw, nh), interpolation=cv2.INTER_AREA)
    y, x = (nh - size[1]) // 2, (nw - size[0]) // 2
    return small[y : y + size[1], x : x + size[0]]


def real_clips(kind: str, frames: int = 5) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``[(name, clean [F, H, W, 3], degraded)]`` uint8 for each of :data:`CLIPS`; ``kind``: ``realbasicvsr`` or
    ``codec``. Raises ``FileNotFoundError`` with how to get the files when they are missing."""
    from daflow.data.degrade import degrade_clip, sample_params
    from daflow.data.degrade.ops import video_compress
    from daflow.data.degrade.params import CodecParams

    if kind not in ("realbasicvsr", "codec"):
        raise ValueError(f"kind must be realbasicvsr or codec, got {kind!r}")
    videos = find_videos()
    if videos is None:
        raise FileNotFoundError(HOW)
    out = []
    for i, (name, start) in enumerate(CLIPS):
        raw = _read(videos[name], start, frames)
        if kind == "realbasicvsr":
            clean = np.stack([_resize_crop(f, (128, 128)) for f in raw])
            lq = degrade_clip(clean, sample_params("realbasicvsr", frames, clean.shape[1:3], i))
        else:
            clean = np.stack([_resize_crop(f, (176, 144)) for f in raw])
            lq = np.stack(video_compress(clean, CodecParams("libx264", CODEC_BITS), as_uint8=True))
        out.append((Path(name).stem, clean, lq))
    return out
