"""Atomic file writing and image reading shared by every module that touches the disk.

Every output of daflow is written to a temporary file in the destination folder and renamed into place,
so an interrupted run never leaves a half-written file behind (DESIGN §1).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def current_umask() -> int:
    """The process umask, read without changing it where the system allows (Linux ``/proc``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: read by setting and restoring it at once
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``, on failure delete it.

    The temporary name keeps the final suffix so that libraries choosing a format by extension
    (OpenCV, h5py, numpy) behave as for the real name. The finished file gets the permissions a plain
    ``open()`` would give it (0666 minus the umask), not the private 0600 of the temporary file.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".part{path.suffix}", dir=path.parent)
    except OSError as err:
        raise ValueError(f"cannot write {path}: {err.strerror or err}") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~current_umask())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def check_output_dir(path: str | os.PathLike[str], flag: str = "-o") -> Path:
    """An output folder: it may exist (runs resume) but must not be a file, and it must be writable (checked before
    any work starts); returns it as a Path."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag} {path}: exists and is not a folder; give a folder (new or from an earlier run)")
    _check_writable(path, flag)
    return path


def check_output_file(path: str | os.PathLike[str], flag: str = "-o") -> Path:
    """An output file: not a folder, in a folder that can be written (checked before any work starts)."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{flag} {path}: is a folder; give a file name")
    _check_writable(path.parent if str(path.parent) else Path("."), flag, target=path)
    return path


def _check_writable(folder: Path, flag: str, *, target: Path | None = None) -> None:
    """Refuse, as one line, an output whose folder (or nearest existing parent, where it will be made) is not
    writable."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"cannot write {target or folder}: {existing} is not a folder ({flag})")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write {target or folder}: permission denied in {existing} ({flag})")


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def read_json(path: str | os.PathLike[str], *, what: str = "JSON file") -> dict:
    """Read a JSON file; a missing or malformed file is a one-line error naming it."""
    import json

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a valid {what} ({err})") from None


def claim_run(
    path: str | os.PathLike[str],
    record: dict,
    *,
    keys: tuple[str, ...] | None = None,
    what: str = "a run",
    indent: int = 2,
) -> dict:
    """The one guard of every resumable output: if ``path`` (a run's settings record, JSON) exists, refuse with a
    clear error when it differs from ``record`` on ``keys`` (default: every key of either); then write ``record``
    there atomically. Returns the record as read back (tuples as lists)."""
    path = Path(path)
    record = json.loads(json.dumps(record))
    if path.is_file():
        old = read_json(path, what=f"the settings of {what}")
        names = keys if keys is not None else sorted(set(old) | set(record))
        diff = [k for k in names if old.get(k) != record.get(k)]
        if diff:
            lines = "; ".join(f"{k}: saved {_short(old.get(k))} vs now {_short(record.get(k))}" for k in diff)
            raise ValueError(
                f"{path.parent} holds {what} made with other settings ({lines}); use another output folder or the "
                "same settings"
            )
    atomic_write_text(path, json.dumps(record, indent=indent))
    return record


def _short(value, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """``(height, width)`` of an image file, from its header for PNG and JPEG (no decoding), else by decoding it."""
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(26)
        if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 24:
            return int.from_bytes(head[20:24], "big"), int.from_bytes(head[16:20], "big")
        if head[:2] == b"\xff\xd8":
            fh.seek(2)
            while True:
                marker = fh.read(4)
                if len(marker) < 4 or marker[0] != 0xFF:
                    break
                kind, length = marker[1], int.from_bytes(marker[2:4], "big")
                if 0xC0 <= kind <= 0xCF and kind not in (0xC4, 0xC8, 0xCC):  # start of frame: P, H, W
                    sof = fh.read(5)
                    return int.from_bytes(sof[1:3], "big"), int.from_bytes(sof[3:5], "big")
                fh.seek(length - 2, os.SEEK_CUR)
    return read_image(path).shape[:2]


def read_image(path: str | os.PathLike[str], *, strict: bool = False) -> np.ndarray:
    """Read an 8-bit RGB image as ``[H, W, 3]`` uint8.

    Grey images are expanded to three channels and an alpha channel is dropped, unless ``strict`` (then
    both are errors, as the degradation pipeline wants). 16-bit images are refused, because every frame
    reader in daflow works on 8-bit video frames.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f"cannot decode image {path}: not a readable image file")
    if img.dtype != np.uint8:
        raise ValueError(f"image {path} has dtype {img.dtype}; expected 8-bit frames")
    channels = 1 if img.ndim == 2 else img.shape[2]
    if strict and channels != 3:
        kind = {1: "grayscale", 2: "grayscale+alpha", 4: "RGBA"}.get(channels, f"{channels}-channel")
        raise ValueError(f"image {path} is {kind}; expected an RGB frame")
    if img.ndim == 2:
        return np.repeat(img[:, :, None], 3, axis=2)
    if img.shape[2] == 4:
        img = img[:, :, :3]
    return np.ascontiguousarray(img[:, :, ::-1])


def write_image(path: str | os.PathLike[str], image: np.ndarray, *, jpeg_quality: int = 95) -> None:
    """Write an RGB (``[H, W, 3]``) or grey (``[H, W]``) uint8 image atomically; format by extension
    (``jpeg_quality`` applies to ``.jpg`` / ``.jpeg``)."""
    path = Path(path)
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(
            f"write_image({path}): expected uint8 [H, W, 3] RGB or [H, W] grey, got {image.dtype} {image.shape}"
        )
    bgr = image if image.ndim == 2 else np.ascontiguousarray(image[:, :, ::-1])
    if path.suffix and path.suffix.lower() not in IMAGE_EXTENSIONS:
        raise ValueError(
            f"{path}: cannot write an image with the extension {path.suffix!r}; use one of "
            f"{', '.join(IMAGE_EXTENSIONS)}"
        )
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if path.suffix.lower() in (".jpg", ".jpeg") else []
    try:
        ok, buf = cv2.imencode(path.suffix or ".png", bgr, params)
    except cv2.error:
        ok = False
    if not ok:
        raise ValueError(f"write_image({path}): OpenCV cannot encode the extension {path.suffix!r}")
    atomic_write_bytes(path, buf.tobytes())
