"""Flow file formats: Middlebury/Sintel ``.flo``, Spring ``.flo5``, KITTI 16-bit ``.png``, ``.npy`` and
TartanAir's ``*_flow.npy`` + ``*_mask.npy``.

Every reader returns ``(flow, valid)``: ``flow`` float32 ``[H, W, 2]`` (u = x displacement, v = y
displacement, in pixels of the flow's own grid) and ``valid`` bool ``[H, W]``. The format is chosen by the
file name. Layouts follow ``docs/datasets.md``:

- ``.flo``: little-endian float32 tag 202021.25 ("PIEH"), int32 width, int32 height, then ``H·W·2``
  float32 interleaved (u, v). Values with magnitude above 1e9 mean "unknown" (written as 1e10).
- ``.flo5``: HDF5 with dataset ``flow`` ``[H, W, 2]``; NaN marks pixels without ground truth.
- ``.png`` (KITTI): 16-bit RGB, u = (R − 2¹⁵)/64, v = (G − 2¹⁵)/64, B = valid bit.
- ``.npy``: ``[H, W, 2]`` float; non-finite = invalid. A file named ``*_flow.npy`` with a sibling
  ``*_mask.npy`` is TartanAir's: valid = mask < 100 (as FlowSeek / SEA-RAFT evaluate).
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from daflow.files import atomic_path

FLO_TAG = 202021.25
FLO_UNKNOWN_THRESHOLD = 1e9
FLO_UNKNOWN_VALUE = 1e10
KITTI_SCALE = 64.0
KITTI_OFFSET = 2.0**15
KITTI_MAX_ABS = (65535 - KITTI_OFFSET) / KITTI_SCALE  # 511.98 px
TARTANAIR_INVALID_MASK = 100

FLOW_EXTENSIONS = (".flo", ".flo5", ".png", ".npy")


class FlowFormatError(ValueError):
    """A flow file that is truncated, mislabelled or of the wrong shape; the message names the file."""


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in FLOW_EXTENSIONS:
        raise FlowFormatError(
            f"{path}: unknown flow file extension {path.suffix!r}; expected one of {', '.join(FLOW_EXTENSIONS)}"
        )
    return suffix


def tartanair_mask_path(path: str | os.PathLike[str]) -> Path | None:
    """The ``*_mask.npy`` beside a TartanAir ``*_flow.npy``, or None for other names."""
    path = Path(path)
    if not path.name.endswith("_flow.npy"):
        return None
    return path.with_name(path.name[: -len("_flow.npy")] + "_mask.npy")


# ---------------------------------------------------------------------------------------------------- read


def read_flow(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read a flow file; returns ``(flow [H, W, 2] float32, valid [H, W] bool)``."""
    path = Path(path)
    fmt = _format_of(path)
    if not path.is_file():
        raise FileNotFoundError(f"flow file not found: {path}")
    if fmt == ".flo":
        flow = _read_flo(path)
        valid = np.isfinite(flow).all(-1) & (np.abs(flow) < FLO_UNKNOWN_THRESHOLD).all(-1)
    elif fmt == ".flo5":
        flow = _read_flo5(path)
        valid = np.isfinite(flow).all(-1)
    elif fmt == ".png":
        flow, valid = _read_kitti_png(path)
    else:
        flow, valid = _read_npy(path)
    flow = np.where(valid[..., None], flow, 0.0).astype(np.float32)
    return flow, valid


def _read_flo(path: Path) -> np.ndarray:
    data = path.read_bytes()
    if len(data) < 12:
        raise FlowFormatError(f"{path}: truncated .flo file ({len(data)} bytes; the header alone is 12)")
    tag = np.frombuffer(data, "<f4", count=1, offset=0)[0]
    if tag != np.float32(FLO_TAG):
        raise FlowFormatError(f"{path}: wrong .flo tag {tag!r}; expected {FLO_TAG} ('PIEH')")
    width, height = (int(v) for v in np.frombuffer(data, "<i4", count=2, offset=4))
    if width <= 0 or height <= 0 or width * height > 1 << 31:
        raise FlowFormatError(f"{path}: implausible .flo size {width}x{height}")
    expected = 12 + width * height * 8
    if len(data) != expected:
        raise FlowFormatError(
            f"{path}: .flo file of {width}x{height} must have {expected} bytes, found {len(data)} (truncated?)"
        )
    return np.frombuffer(data, "<f4", offset=12).reshape(height, width, 2).astype(np.float32)


def _read_flo5(path: Path) -> np.ndarray:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if "flow" not in f:
                raise FlowFormatError(f"{path}: .flo5 file has no dataset 'flow' (found {sorted(f.keys())})")
            flow = f["flow"][()]
    except OSError as err:
        raise FlowFormatError(f"{path}: not a readable HDF5 .flo5 file ({err})") from err
    return _check_hw2(np.asarray(flow, dtype=np.float32), path)


def _read_kitti_png(path: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise FlowFormatError(f"{path}: cannot decode as PNG")
    if raw.dtype != np.uint16 or raw.ndim != 3 or raw.shape[2] != 3:
        raise FlowFormatError(
            f"{path}: KITTI flow PNG must be 16-bit with 3 channels, found {raw.dtype} shape {raw.shape}"
        )
    rgb = raw[:, :, ::-1].astype(np.float32)  # OpenCV reads BGR
    flow = (rgb[:, :, :2] - KITTI_OFFSET) / KITTI_SCALE
    valid = raw[:, :, 0] > 0  # B channel
    return flow.astype(np.float32), valid


def _read_npy(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        flow = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise FlowFormatError(f"{path}: not a readable .npy file ({err})") from err
    flow = _check_hw2(np.asarray(flow, dtype=np.float32), path)
    valid = np.isfinite(flow).all(-1)
    mask_path = tartanair_mask_path(path)
    if mask_path is not None and mask_path.is_file():
        mask = np.load(mask_path, allow_pickle=False)
        if mask.shape != flow.shape[:2]:
            raise FlowFormatError(f"{mask_path}: mask shape {mask.shape} does not match flow {flow.shape[:2]}")
        valid &= mask < TARTANAIR_INVALID_MASK
    return flow, valid


def _check_hw2(flow: np.ndarray, path: Path) -> np.ndarray:
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise FlowFormatError(f"{path}: expected a flow array of shape [H, W, 2], found {flow.shape}")
    return flow


# --------------------------------------------------------------------------------------------------- write


def write_flow(path: str | os.PathLike[str], flow: np.ndarray, valid: np.ndarray | None = None) -> None:
    """Write ``flow`` ``[H, W, 2]`` (and optionally ``valid`` ``[H, W]``) atomically; format by extension.

    Invalid pixels (``~valid`` or non-finite flow) are stored as each format marks them: 1e10 in
    ``.flo``, NaN in ``.flo5`` and ``.npy``, a zero valid bit in KITTI PNG, mask 100 in TartanAir.
    """
    path = Path(path)
    fmt = _format_of(path)
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise FlowFormatError(f"write_flow({path}): expected flow of shape [H, W, 2], got {flow.shape}")
    flow = flow.astype(np.float32)
    ok = np.isfinite(flow).all(-1)
    if valid is not None:
        valid = np.asarray(valid)
        if valid.shape != flow.shape[:2]:
            raise FlowFormatError(
                f"write_flow({path}): valid of shape {valid.shape} does not match flow {flow.shape[:2]}"
            )
        ok &= valid.astype(bool)
    with atomic_path(path) as tmp:
        if fmt == ".flo":
            _write_flo(tmp, np.where(ok[..., None], flow, np.float32(FLO_UNKNOWN_VALUE)))
        elif fmt == ".flo5":
            _write_flo5(tmp, np.where(ok[..., None], flow, np.float32(np.nan)))
        elif fmt == ".png":
            _write_kitti_png(tmp, flow, ok, path)
        else:
            np.save(tmp, np.where(ok[..., None], flow, np.float32(np.nan)), allow_pickle=False)
    mask_path = tartanair_mask_path(path)
    if fmt == ".npy" and mask_path is not None:
        with atomic_path(mask_path) as tmp:
            np.save(tmp, np.where(ok, 0, TARTANAIR_INVALID_MASK).astype(np.uint8), allow_pickle=False)


def _write_flo(path: Path, flow: np.ndarray) -> None:
    h, w = flow.shape[:2]
    with open(path, "wb") as f:
        f.write(np.array([FLO_TAG], "<f4").tobytes())
        f.write(np.array([w, h], "<i4").tobytes())
        f.write(np.ascontiguousarray(flow, dtype="<f4").tobytes())


def _write_flo5(path: Path, flow: np.ndarray) -> None:
    import h5py

    with h5py.File(path, "w") as f:
        f.create_dataset("flow", data=flow, compression="gzip", compression_opts=5)


def _write_kitti_png(path: Path, flow: np.ndarray, ok: np.ndarray, final: Path) -> None:
    too_big = ok & (np.abs(flow) > KITTI_MAX_ABS).any(-1)
    if too_big.any():
        raise FlowFormatError(
            f"write_flow({final}): KITTI PNG stores |u|, |v| <= {KITTI_MAX_ABS:.2f} px; "
            f"{int(too_big.sum())} valid pixels exceed it (use .flo, .flo5 or .npy)"
        )
    enc = np.zeros(flow.shape[:2] + (3,), np.uint16)
    vals = np.where(ok[..., None], flow, 0.0) * KITTI_SCALE + KITTI_OFFSET
    enc[:, :, :2] = np.clip(np.rint(vals), 0, 65535).astype(np.uint16)
    enc[:, :, 2] = ok.astype(np.uint16)
    if not cv2.imwrite(str(path), enc[:, :, ::-1].copy()):
        raise FlowFormatError(f"write_flow({final}): OpenCV failed to write the PNG")
