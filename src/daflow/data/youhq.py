"""YouHQ (Zhou et al., Upscale-A-Video): HQ video clips without flow ground truth.

Accepted layouts (``docs/datasets.md``): the training set as video files
(``YouHQ-Train/<category>/<youtube_id>/<start>_<end>_<nn>.mp4``), YouHQ40 as one folder of frames per
clip (``YouHQ40/<clip>/<frame>.png``, also under ``GT/`` or ``LQ/``), or any mixture: every video file and
every folder that directly holds image files below ``ROOT`` is one clip. Samples are F-frame windows.
"""

from __future__ import annotations

import os
from pathlib import Path

from daflow.data.base import DatasetLayoutError, natural_key
from daflow.data.video import VIDEO_EXTENSIONS, VideoFrames
from daflow.files import IMAGE_EXTENSIONS


def find_clips(root: Path) -> list[Path]:
    """Video files and frame folders below ``root`` in natural order."""
    clips = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        exts = {Path(f).suffix.lower() for f in filenames}
        if exts & set(IMAGE_EXTENSIONS):
            clips.append(Path(dirpath))
        clips.extend(Path(dirpath) / f for f in filenames if Path(f).suffix.lower() in VIDEO_EXTENSIONS)
    return sorted(clips, key=natural_key)


class YouHQ(VideoFrames):
    name = "youhq"

    def __init__(self, root: str | os.PathLike[str], *, num_frames: int = 3, stride: int = 1, transform=None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetLayoutError(f"YouHQ: expected folder {self.root} not found")
        clips = find_clips(self.root)
        if not clips:
            raise DatasetLayoutError(
                f"YouHQ: no clips below {self.root}; expected <category>/<id>/<start>_<end>_<nn>.mp4 "
                "or <clip>/<frame>.png folders"
            )
        super().__init__(clips, num_frames=num_frames, stride=stride, transform=transform)
