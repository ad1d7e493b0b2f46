"""`daflow degrade`: dataset mirrors, manifest, resume, workers, bad input."""

import json

import numpy as np
import pytest

from daflow.cli import main
from daflow.data import Sintel, Spring, TartanAir, YouHQ
from daflow.data.degrade import degrade_clip
from daflow.data.degrade.mirror import degrade_tree, load_manifest
from daflow.data.synthetic import SyntheticConfig, render_clip
from daflow.data.video import write_video
from daflow.files import read_image, write_image
from daflow.flow.io import read_flow, write_flow

H, W = 36, 52


def _frames(n, seed=0):
    return render_clip(SyntheticConfig(height=H, width=W, num_frames=n, num_objects=(1, 2)), seed).frames


def make_sintel(root, scenes=("alley_1", "market_2"), n=4):
    for si, s in enumerate(scenes):
        frames = _frames(n, si)
        for p in ("clean", "final"):
            for i in range(n):
                write_image(root / "training" / p / s / f"frame_{i + 1:04d}.png", frames[i])
        for i in range(n - 1):
            write_flow(root / "training" / "flow" / s / f"frame_{i + 1:04d}.flo", np.full((H, W, 2), i, np.float32))
    return root


def _all_files(root):
    return {
        p.relative_to(root): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".daflow-degrade" not in p.parts
    }


def test_sintel_mirror_reads_back_and_manifest_reproduces(tmp_path):
    src = make_sintel(tmp_path / "Sintel")
    out = tmp_path / "Sintel-LQ"
    manifest = degrade_tree("sintel", src, out, seed=1, progress=False)
    assert len(manifest["clips"]) == 4  # 2 scenes x 2 passes
    hq, lq = Sintel(src, dstype="final"), Sintel(out, dstype="final")
    assert len(lq) == len(hq) == 6
    a, b = hq[2], lq[2]
    assert b.frames.shape == a.frames.shape and not np.array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.flow, b.flow)
    assert (out / "training" / "flow").is_symlink()
    # re-degrading from the manifest gives the same bytes
    _, params = load_manifest(out)
    clip_id = "training/final/alley_1"
    frames = np.stack([read_image(src / clip_id / f"frame_{i:04d}.png") for i in range(1, 5)])
    again = degrade_clip(frames, params[clip_id])
    for i in range(4):
        np.testing.assert_array_equal(again[i], read_image(out / clip_id / f"frame_{i + 1:04d}.png"))


def test_determinism_resume_and_workers(tmp_path):
    src = make_sintel(tmp_path / "S")
    degrade_tree("sintel", src, tmp_path / "a", seed=5, progress=False)
    first = _all_files(tmp_path / "a")
    degrade_tree("sintel", src, tmp_path / "b", seed=5, workers=2, progress=False)
    assert _all_files(tmp_path / "b") == first  # order and worker count do not matter
    degrade_tree("sintel", src, tmp_path / "b3", seed=5, workers=5, progress=False)  # more workers than clips
    assert _all_files(tmp_path / "b3") == first  # the frames of each clip spread over the workers: same bytes
    degrade_tree("sintel", src, tmp_path / "c", seed=6, progress=False)
    assert _all_files(tmp_path / "c") != first
    # resume: a clip whose marker is gone is redone (identically); others are skipped untouched
    victim = tmp_path / "a" / "training" / "clean" / "market_2" / "frame_0003.png"
    victim.unlink()
    for m in (tmp_path / "a" / ".daflow-degrade" / "done").iterdir():
        if "market_2" in m.read_text() and "clean" in m.read_text():
            m.unlink()
    untouched = tmp_path / "a" / "training" / "final" / "alley_1" / "frame_0001.png"
    mtime = untouched.stat().st_mtime_ns
    degrade_tree("sintel", src, tmp_path / "a", seed=5, progress=False)
    assert _all_files(tmp_path / "a") == first and untouched.stat().st_mtime_ns == mtime
    with pytest.raises(ValueError, match="other settings"):
        degrade_tree("sintel", src, tmp_path / "a", seed=7, progress=False)


def test_shards_merge_into_the_single_run(tmp_path, capsys):
    from daflow.shard import Shard, parse_shard

    src = make_sintel(tmp_path / "S", scenes=("alley_1", "market_2", "cave_4"))
    whole = degrade_tree("sintel", src, tmp_path / "one", seed=3, progress=False)
    # three machines, each with its own folder, copied together afterwards
    for k in range(3):
        part = degrade_tree("sintel", src, tmp_path / f"m{k}", seed=3, shard=Shard(k, 3), progress=False)
        assert part["pending"] == 6 - len(part["clips"]) and not (tmp_path / f"m{k}" / "manifest.json").exists()
    import subprocess

    (tmp_path / "merged").mkdir()
    for k in range(3):  # as `cp -an` (or rsync) would bring them together
        subprocess.run(["cp", "-an", f"{tmp_path / f'm{k}'}/.", str(tmp_path / "merged")], check=True)
    # the run without --shard finds every clip done: it degrades nothing and writes the manifest
    main(["degrade", "sintel", str(src), "-o", str(tmp_path / "merged"), "--seed", "3", "--no-progress"])
    assert _all_files(tmp_path / "merged") == _all_files(tmp_path / "one")
    assert json.loads((tmp_path / "merged" / "manifest.json").read_text())["clips"] == whole["clips"]
    # shards sharing one folder: the last to finish writes the manifest
    for k in (1, 0):
        main(["degrade", "sintel", str(src), "-o", str(tmp_path / "shared"), "--seed", "3", "--shard", f"{k}/2"])
    assert "pending" in capsys.readouterr().out
    assert _all_files(tmp_path / "shared") == _all_files(tmp_path / "one")
    for bad in ("3/3", "1", "a/b", "0/0"):
        with pytest.raises(ValueError, match="--shard"):
            parse_shard(bad)
    capsys.readouterr()
    assert main(["degrade", "sintel", str(src), "-o", str(tmp_path / "bad"), "--shard", "2/2"]) == 1
    assert "--shard K/N needs N >= 1 and 0 <= K < N, got 2/2" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()  # refused before anything is written


def test_long_sequences_are_chunked(tmp_path):
    frames = _frames(7)
    for i, f in enumerate(frames):
        write_image(tmp_path / "in" / f"{i:03d}.png", f)
    manifest = degrade_tree("frames", tmp_path / "in", tmp_path / "out", max_clip_frames=3, progress=False)
    assert [len(c["frames"]) for c in manifest["clips"]] == [2, 3, 2]
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == [f"{i:03d}.png" for i in range(7)]


def test_video_spring_tartanair_youhq(tmp_path):
    frames = _frames(4)
    write_video(tmp_path / "clip.mp4", frames, crf=0)
    degrade_tree("video", tmp_path / "clip.mp4", tmp_path / "v", progress=False)
    assert sorted(p.name for p in (tmp_path / "v").glob("*.png")) == [f"frame_{i:06d}.png" for i in range(4)]
    # Spring
    sp = tmp_path / "spring" / "train" / "0001"
    for i in range(3):
        write_image(sp / "frame_left" / f"frame_left_{i + 1:04d}.png", frames[i])
    for i in range(2):
        write_flow(sp / "flow_FW_left" / f"flow_FW_left_{i + 1:04d}.flo5", np.ones((2 * H, 2 * W, 2), np.float32))
    degrade_tree("spring", tmp_path / "spring", tmp_path / "spring-lq", progress=False)
    assert len(Spring(tmp_path / "spring-lq")) == 2
    # TartanAir
    tr = tmp_path / "tartan" / "westerndesert" / "Easy" / "P000"
    (tr / "flow").mkdir(parents=True)
    for i in range(3):
        write_image(tr / "image_left" / f"{i:06d}_left.png", frames[i])
    for i in range(2):
        np.save(tr / "flow" / f"{i:06d}_{i + 1:06d}_flow.npy", np.ones((H, W, 2), np.float32))
    degrade_tree("tartanair", tmp_path / "tartan", tmp_path / "tartan-lq", progress=False)
    s = TartanAir(tmp_path / "tartan-lq", every=1)[1]
    assert s.frames.shape == (2, H, W, 3) and s.flow.shape == (1, H, W, 2)
    # YouHQ: a video becomes a folder of frames
    write_video(tmp_path / "youhq" / "animal" / "abc" / "000_031_00.mp4", frames)
    degrade_tree("youhq", tmp_path / "youhq", tmp_path / "youhq-lq", progress=False)
    assert len(YouHQ(tmp_path / "youhq-lq", num_frames=3)) == 2
    assert (tmp_path / "youhq-lq" / "animal" / "abc" / "000_031_00" / "frame_000003.png").is_file()


def test_bad_inputs(tmp_path):
    src = tmp_path / "in"
    frames = _frames(3)
    for i, f in enumerate(frames):
        write_image(src / f"{i}.png", f)
    with pytest.raises(ValueError, match="inside the input"):
        degrade_tree("frames", src, src / "out", progress=False)
    with pytest.raises(FileNotFoundError, match="input not found"):
        degrade_tree("frames", tmp_path / "nope", tmp_path / "o", progress=False)
    (src / "1.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"cannot decode image .*1\.png"):
        degrade_tree("frames", src, tmp_path / "o1", progress=False)
    write_image(src / "1.png", frames[1][:, :, 0])  # grayscale
    with pytest.raises(ValueError, match="grayscale"):
        degrade_tree("frames", src, tmp_path / "o2", progress=False)
    write_image(src / "1.png", frames[1][:-2])
    with pytest.raises(ValueError, match="differ in size"):
        degrade_tree("frames", src, tmp_path / "o3", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no image files"):
        degrade_tree("frames", tmp_path / "empty", tmp_path / "o4", progress=False)
    for o in ("o1", "o2", "o3"):  # nothing half-written, no clip marked done
        written = [p for p in (tmp_path / o).rglob("*") if p.is_file()]
        assert all(p.name == "run.json" for p in written), written


def test_cli_degrade_with_preview(tmp_path, capsys):
    src = make_sintel(tmp_path / "Sintel", scenes=("alley_1",))
    out = tmp_path / "lq"
    assert (
        main(
            [
                "degrade",
                "sintel",
                str(src),
                "-o",
                str(out),
                "--seed",
                "3",
                "--preview",
                "--no-progress",
                "--workers",
                "2",
            ]
        )
        == 0
    )
    assert "2 clips, 8 frames" in capsys.readouterr().out
    assert read_image(out / ".daflow-degrade" / "preview.png").shape[1] > 3 * 40
    m = json.loads((out / "manifest.json").read_text())
    assert m["preset"] == "realbasicvsr" and m["seed"] == 3 and m["clips"][0]["params"]["version"] == 1
    assert main(["degrade", "sintel", str(src), "-o", str(src / "x")]) == 1
    assert "inside the input" in capsys.readouterr().err
    assert main(["degrade", "sintel", str(src), "-o", str(out), "--workers", "0"]) == 1
    flow, _ = read_flow(out / "training" / "flow" / "alley_1" / "frame_0001.flo")
    assert flow.shape == (H, W, 2)
