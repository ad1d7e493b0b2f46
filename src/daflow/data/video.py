"""Any video file or folder of frames as a source of F-frame clips (no ground truth).

Video files are decoded with PyAV; frame folders are read in natural order (``frame_2`` before
``frame_10``) from the image files they contain.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from daflow.data.base import ClipDataset, DatasetLayoutError, FlowSample, natural_key, window_plan
from daflow.data.degrade.ops import codec_options
from daflow.files import IMAGE_EXTENSIONS, atomic_path, image_size, read_image

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".y4m")


def is_video_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS


def list_frame_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Image files of a frame folder in natural order; a clear error if there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetLayoutError(f"frame folder not found: {folder}")
    files = sorted(
        (p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()), key=natural_key
    )
    if not files:
        raise DatasetLayoutError(f"{folder}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in this folder")
    return files


def _open(path: Path):
    import av

    try:
        return av.open(str(path))
    except (av.error.FFmpegError, OSError) as err:  # type: ignore[attr-defined]
        raise ValueError(f"{path}: not a readable video file ({err})") from err


def count_video_frames(path: str | os.PathLike[str]) -> int:
    """Number of frames of a video file (decoded when the container does not record it)."""
    path = Path(path)
    with _open(path) as container:
        if not container.streams.video:
            raise ValueError(f"{path}: no video stream")
        stream = container.streams.video[0]
        if stream.frames:
            return int(stream.frames)
        return sum(1 for _ in container.decode(stream))


def read_video(path: str | os.PathLike[str], start: int = 0, count: int | None = None) -> np.ndarray:
    """Decode frames ``start … start+count-1`` of a video as ``[N, H, W, 3]`` uint8 RGB."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video not found: {path}")
    frames = []
    with _open(path) as container:
        if not container.streams.video:
            raise ValueError(f"{path}: no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for i, frame in enumerate(container.decode(stream)):
            if i < start:
                continue
            if count is not None and len(frames) >= count:
                break
            frames.append(frame.to_ndarray(format="rgb24"))
    if not frames:
        raise ValueError(f"{path}: no frames decoded from index {start}")
    if count is not None and len(frames) < count:
        raise ValueError(
            f"{path}: asked for {count} frames from index {start}, the video has only {start + len(frames)}"
        )
    return np.stack(frames)


def write_video(
    path: str | os.PathLike[str],
    frames: np.ndarray,
    *,
    fps: int = 24,
    codec: str = "libx264",
    crf: int | None = 18,
    bit_rate: int | None = None,
    threads: int = 1,
) -> None:
    """Encode ``[N, H, W, 3]`` uint8 RGB frames to a video file atomically (yuv420p; even sizes required by x264)."""
    import av

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"write_video({path}): expected uint8 [N, H, W, 3], got {frames.dtype} {frames.shape}")
    n, h, w, _ = frames.shape
    if codec in ("libx264", "h264") and (h % 2 or w % 2):
        raise ValueError(f"write_video({path}): {codec} with yuv420p needs even sizes, got {w}x{h}")
    with atomic_path(path) as tmp:
        with av.open(str(tmp), mode="w") as container:
            stream = container.add_stream(codec, rate=Fraction(fps))
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            stream.thread_count = threads
            opts = codec_options(codec)
            if crf is not None and bit_rate is None and codec in ("libx264", "h264"):
                opts["crf"] = str(crf)
            if bit_rate is not None:
                stream.bit_rate = int(bit_rate)
            stream.options = opts
            for img in frames:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")))
            container.mux(stream.encode())


class FrameSource:
    """A video file or a frame folder, read by index."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        if is_video_file(self.path):
            self.files: list[Path] | None = None
            self._length = count_video_frames(self.path)
        elif self.path.is_dir():
            self.files = list_frame_files(self.path)
            self._length = len(self.files)
        elif self.path.exists():
            raise ValueError(
                f"{self.path}: neither a video file ({', '.join(VIDEO_EXTENSIONS)}) nor a folder of frames"
            )
        else:
            raise FileNotFoundError(f"input not found: {self.path} (expected a video file or a folder of frames)")

    def __len__(self) -> int:
        return self._length

    def read(self, start: int, count: int) -> np.ndarray:
        """``[count, H, W, 3]`` uint8 frames from ``start``."""
        if start < 0 or start + count > len(self):
            raise IndexError(f"{self.path}: frames {start}..{start + count - 1} out of range 0..{len(self) - 1}")
        if self.files is None:
            return read_video(self.path, start, count)
        frames = [read_image(p) for p in self.files[start : start + count]]
        shapes = {f.shape for f in frames}
        if len(shapes) > 1:
            raise ValueError(f"{self.path}: frames have different sizes {sorted(shapes)}")
        return np.stack(frames)

    def frame_names(self) -> list[str]:
        if self.files is None:
            return [f"{i:06d}" for i in range(len(self))]
        return [p.stem for p in self.files]

    def check_sizes(self) -> tuple[int, int]:
        """``(H, W)`` of every frame; a frame folder whose images differ in size is refused before any work starts,
        naming the odd files (a picture that is not a frame, say)."""
        if self.files is None:
            return read_video(self.path, 0, 1).shape[1:3]
        sizes = [image_size(p) for p in self.files]
        common = Counter(sizes).most_common(1)[0][0]
        odd = [f"{p.name} ({w}x{h})" for p, (h, w) in zip(self.files, sizes) if (h, w) != common]
        if odd:
            raise ValueError(
                f"{self.path}: {len(odd)} of {len(sizes)} images differ in size from the frames ({common[1]}x"
                f"{common[0]}): {', '.join(odd[:3])}{' ...' if len(odd) > 3 else ''}; move what is not a frame out "
                "of the folder"
            )
        return common


def frame_indices(
    n: int, start: int = 0, end: int | None = None, stride: int = 1, *, what: str = "the input"
) -> list[int]:
    """Indices ``start, start+stride, …`` below ``end`` (default ``n``) of ``n`` frames; one-line errors naming the
    ``--start``/``--end``/``--stride`` option at fault."""
    if stride < 1:
        raise ValueError(f"--stride must be >= 1, got {stride}")
    if not 0 <= start < n:
        raise ValueError(f"--start {start}: {what} has frames 0..{n - 1}")
    end = n if end is None else end
    if not start < end <= n:
        raise ValueError(f"--end {end}: must be in {start + 1}..{n} ({what} has {n} frames)")
    return list(range(start, end, stride))


class FrameRange:
    """Frames ``start, start+stride, …`` (below ``end``) of a :class:`FrameSource`, with the same interface
    (``len``, ``read``, ``frame_names``, ``path``): ``daflow estimate --start/--end/--stride``."""

    def __init__(self, source: FrameSource, start: int = 0, end: int | None = None, stride: int = 1):
        self.source, self.path = source, source.path
        self.indices = frame_indices(len(source), start, end, stride, what=str(source.path))
        self.stride = stride

    def __len__(self) -> int:
        return len(self.indices)

    def read(self, start: int, count: int) -> np.ndarray:
        idx = self.indices[start : start + count]
        if start < 0 or len(idx) != count:
            raise IndexError(f"{self.path}: frames {start}..{start + count - 1} of the range out of 0..{len(self) - 1}")
        block = self.source.read(idx[0], idx[-1] - idx[0] + 1)  # contiguous decode, then every stride-th frame
        return block[:: self.stride]

    def frame_names(self) -> list[str]:
        names = self.source.frame_names()
        return [names[i] for i in self.indices]

    def check_sizes(self) -> tuple[int, int]:
        return self.source.check_sizes()


def window_meta(dataset: str, source, start: int, num_frames: int, first_pair: int) -> dict:
    """The ``meta`` of a window of ``num_frames`` frames of ``source`` from ``start`` (its frames' names, and the
    first pair it owns: :data:`~daflow.data.base.CHUNKS`)."""
    return {
        "dataset": dataset,
        "source": str(source.path),
        "start": start,
        "frames": source.frame_names()[start : start + num_frames],
        "first_pair": first_pair,
    }


class VideoFrames(ClipDataset):
    """F-frame windows of one or more videos / frame folders, without ground truth."""

    name = "video"

    def __init__(
        self,
        paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        *,
        num_frames: int = 2,
        stride: int = 1,
        transform=None,
    ):
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        self.sources = [FrameSource(p) for p in paths]
        self.num_frames = num_frames
        self.windows = [
            (s, start, first) for s in self.sources for start, first in window_plan(len(s), num_frames, stride)
        ]
        if not self.windows:
            raise ValueError(f"{[str(s.path) for s in self.sources]}: fewer than num_frames={num_frames} frames")
        super().__init__([], transform=transform)

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int):  # type: ignore[override]
        source, start, first_pair = self.windows[index]
        meta = window_meta(self.name, source, start, self.num_frames, first_pair)
        sample = FlowSample(frames=source.read(start, self.num_frames), meta=meta)
        return self.transform(sample) if self.transform else sample
