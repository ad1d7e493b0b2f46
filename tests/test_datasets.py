"""Dataset readers on small fake trees built in the exact official layouts and file names."""

import numpy as np
import pytest

from daflow.data import DatasetLayoutError, Sintel, Spring, TartanAir, VideoFrames, YouHQ
from daflow.data.video import FrameSource, read_video, write_video
from daflow.files import write_image
from daflow.flow.io import write_flow


def _frame(value, h=8, w=12):
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = value
    return img


def make_sintel(root, scenes=("alley_1", "market_2"), n=4, h=8, w=12):
    for s in scenes:
        for p in ("clean", "final"):
            for i in range(1, n + 1):
                write_image(
                    root / "training" / p / s / f"frame_{i:04d}.png", _frame(i + (100 if p == "final" else 0), h, w)
                )
        for i in range(1, n):
            write_flow(root / "training" / "flow" / s / f"frame_{i:04d}.flo", np.full((h, w, 2), i, np.float32))
            occ = np.zeros((h, w), np.uint8)
            occ[0, 0] = 255
            write_image(root / "training" / "occlusions" / s / f"frame_{i:04d}.png", occ)
    return root


def test_sintel_pairs_and_clips(tmp_path):
    root = make_sintel(tmp_path / "MPI-Sintel")
    ds = Sintel(root, dstype="clean")
    assert len(ds) == 2 * 3
    s = ds[1]
    assert s.frames.shape == (2, 8, 12, 3) and s.flow.shape == (1, 8, 12, 2) and s.valid.all()
    assert s.frames[0, 0, 0, 0] == 2 and s.frames[1, 0, 0, 0] == 3 and s.flow[0, 0, 0, 0] == 2  # pair (2, 3)
    assert s.meta["scene"] == "alley_1" and s.meta["frames"] == ["frame_0002", "frame_0003"]
    assert s.occlusion[0, 0, 0] and s.occlusion.sum() == 1
    assert Sintel(root, dstype="final")[0].frames[0, 0, 0, 0] == 101
    clips = Sintel(root, num_frames=3, scenes=["market_2"])
    assert len(clips) == 2 and clips[0].flow.shape == (2, 8, 12, 2)
    assert clips[1].meta["frames"] == ["frame_0002", "frame_0003", "frame_0004"]


def test_sintel_errors_name_expected_path(tmp_path):
    with pytest.raises(DatasetLayoutError, match=r"training/final"):
        Sintel(tmp_path)
    root = make_sintel(tmp_path / "s")
    (root / "training" / "flow" / "alley_1" / "frame_0002.flo").unlink()
    with pytest.raises(DatasetLayoutError, match=r"alley_1/frame_0002.flo"):
        Sintel(root)
    with pytest.raises(ValueError, match="pass"):
        Sintel(root, dstype="albedo")
    with pytest.raises(DatasetLayoutError, match="nope"):
        Sintel(root, scenes=["nope"])


def make_spring(root, scenes=("0001", "0045"), n=3, h=4, w=6):
    for s in scenes:
        for i in range(1, n + 1):
            write_image(root / "train" / s / "frame_left" / f"frame_left_{i:04d}.png", _frame(i, h, w))
        for i in range(1, n):
            gt = np.zeros((2 * h, 2 * w, 2), np.float32)
            gt[0::2, 0::2] = i  # the [::2, ::2] samples
            gt[1::2] = 99
            gt[0, 2] = np.nan
            write_flow(root / "train" / s / "flow_FW_left" / f"flow_FW_left_{i:04d}.flo5", gt)
    return root


def test_spring_subsampled_and_full_gt(tmp_path):
    root = make_spring(tmp_path / "spring")
    ds = Spring(root)
    assert len(ds) == 4
    s = ds[0]
    assert s.flow.shape == (1, 4, 6, 2) and s.frames.shape == (2, 4, 6, 3)
    assert np.all(s.flow[0][s.valid[0]] == 1) and not s.valid[0, 0, 1] and s.valid.sum() == 23
    full = Spring(root, full_resolution_gt=True, scenes=["0045"])
    assert len(full) == 2 and full[0].flow.shape == (1, 8, 12, 2) and full[0].meta["scene"] == "0045"
    with pytest.raises(DatasetLayoutError, match="frame_left"):
        (root / "train" / "0002").mkdir()
        Spring(root)


def make_tartanair(
    root, trajs=("abandonedfactory/Easy/P000", "westerndesert/Easy/P001", "soulcity/Hard/P002"), n=4, h=6, w=8
):
    for t in trajs:
        for i in range(n):
            write_image(root / t / "image_left" / f"{i:06d}_left.png", _frame(i, h, w))
        (root / t / "flow").mkdir(parents=True)
        for i in range(n - 1):
            np.save(root / t / "flow" / f"{i:06d}_{i + 1:06d}_flow.npy", np.full((h, w, 2), i, np.float32))
            mask = np.zeros((h, w), np.uint8)
            mask[0, 0] = 100
            mask[0, 1] = 10
            np.save(root / t / "flow" / f"{i:06d}_{i + 1:06d}_mask.npy", mask)
    return root


def test_tartanair_flowseek_val_split(tmp_path):
    root = make_tartanair(tmp_path / "tartan")
    val_all = TartanAir(root, split="val", every=1)
    assert len(val_all) == 6 and {s.meta["scene"].split("/")[0] for s in (val_all[0], val_all[5])} == {
        "soulcity",
        "westerndesert",
    }
    val = TartanAir(root)  # every 100th pair
    assert len(val) == 1 and val.items[0] == val_all.items[0]
    s = val_all[0]
    assert not s.valid[0, 0, 0] and s.valid[0, 0, 1] and s.valid.sum() == 47
    assert len(TartanAir(root, split="train")) == 3
    assert len(TartanAir(root, split="val", every=2)) == 3
    with pytest.raises(DatasetLayoutError, match="image_left"):
        TartanAir(tmp_path / "tartan" / "abandonedfactory" / "Easy" / "P000" / "image_left")


def test_video_file_and_frame_folder(tmp_path):
    frames = np.stack([np.full((16, 24, 3), 20 * i, np.uint8) for i in range(5)])
    write_video(tmp_path / "clip.mp4", frames, crf=0)
    got = read_video(tmp_path / "clip.mp4")
    assert got.shape == frames.shape and np.abs(got.astype(int) - frames).max() <= 3
    assert read_video(tmp_path / "clip.mp4", start=2, count=2).shape == (2, 16, 24, 3)
    folder = tmp_path / "frames"
    for i, f in enumerate(frames):
        write_image(folder / f"img_{i + 1}.png", f)  # natural order: img_2 before img_10
    write_image(folder / "img_10.png", frames[4])
    src = FrameSource(folder)
    assert len(src) == 6 and src.frame_names()[:3] == ["img_1", "img_2", "img_3"] and src.frame_names()[-1] == "img_10"
    ds = VideoFrames([tmp_path / "clip.mp4", folder], num_frames=3, stride=2)
    assert len(ds) == 2 + 2
    assert ds[0].frames.shape == (3, 16, 24, 3) and ds[0].flow is None
    with pytest.raises(FileNotFoundError, match="expected a video file or a folder"):
        FrameSource(tmp_path / "none.mp4")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="neither a video file"):
        FrameSource(tmp_path / "notes.txt")
    (tmp_path / "broken.mp4").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable video"):
        FrameSource(tmp_path / "broken.mp4")
    with pytest.raises(DatasetLayoutError, match="no image files"):
        (tmp_path / "empty").mkdir()
        FrameSource(tmp_path / "empty")


def test_youhq_layouts(tmp_path):
    frames = np.stack([np.full((16, 16, 3), 10 * i, np.uint8) for i in range(4)])
    write_video(tmp_path / "YouHQ-Train" / "animal" / "0AugFrZPP9U" / "050400_050459_00.mp4", frames)
    for i, f in enumerate(frames[:3]):
        write_image(tmp_path / "YouHQ-Train" / "YouHQ40" / "clip_01" / f"{i:08d}.png", f)
    ds = YouHQ(tmp_path / "YouHQ-Train", num_frames=3)
    assert len(ds) == 2 + 1
    assert {s.meta["source"].rsplit("/", 1)[-1] for s in (ds[0], ds[2])} == {"050400_050459_00.mp4", "clip_01"}
    with pytest.raises(DatasetLayoutError, match="no clips"):
        (tmp_path / "empty").mkdir()
        YouHQ(tmp_path / "empty")


def test_frames_of_different_sizes_rejected(tmp_path):
    write_image(tmp_path / "a_1.png", _frame(1, 8, 8))
    write_image(tmp_path / "a_2.png", _frame(1, 8, 10))
    with pytest.raises(ValueError, match="different sizes"):
        FrameSource(tmp_path).read(0, 2)
