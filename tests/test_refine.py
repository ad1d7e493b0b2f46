"""The DIS→RAFT refiner: its training data (the mixture), the model, its trainer, the codec preset."""

import json

import numpy as np
import pytest
import torch

from daflow.data.degrade import degrade_clip, sample_params
from daflow.data.degrade.ops import video_compress
from daflow.data.degrade.params import CodecParams
from daflow.data.synthetic import SyntheticConfig, available_photos
from daflow.flow.warp import resize_flow
from daflow.models.classical import classical_flow
from daflow.models.raft import RAFT, InputPadder
from daflow.models.raft_weights import load_raft
from daflow.models.refine import dis_init, refine
from daflow.train.mixture import MIXTURE_PRESETS, MixtureCache, MixtureConfig, build_cache, render_mixture_clip
from daflow.train.refine import (
    REFINE_PRESETS,
    MixturePairs,
    RefineTrainConfig,
    coarse_batch,
    init_refiner,
    train_refiner,
)


def test_all_photo_sources_load():
    assert len(available_photos(photos="all")) >= len(available_photos()) + 10
    with pytest.raises(ValueError, match="photos"):
        SyntheticConfig(photos="some")


@pytest.mark.parametrize("codec", ["libx264", "mpeg4"])
def test_video_compress_below_one_kilobit_per_frame(codec):
    frames = [np.random.default_rng(i).random((48, 64, 3)).astype(np.float32) for i in range(3)]
    low, high = (np.stack(video_compress(frames, CodecParams(codec, b))) for b in (300, 20_000))
    assert low.shape == (3, 48, 64, 3)
    ref = np.stack(frames)
    assert np.abs(low - ref).mean() > np.abs(high - ref).mean()  # fewer bits, more damage


def test_codec_preset_is_deterministic_and_damages():
    clip = np.random.default_rng(0).integers(0, 255, (3, 64, 80, 3), dtype=np.uint8)
    a = degrade_clip(clip, sample_params("codec", 3, (64, 80), 5))
    b = degrade_clip(clip, sample_params("codec", 3, (64, 80), 5))
    assert a.shape == clip.shape and np.array_equal(a, b)
    assert np.abs(a.astype(float) - clip).mean() > 5


def test_mixture_clip_contents_and_static_scenes():
    cfg = MixtureConfig(sizes=((96, 128),), static_prob=1.0)
    clip = render_mixture_clip(cfg, 3)
    assert clip["lq"].shape == (3, 96, 128, 3) and clip["lq"].dtype == np.uint8
    assert clip["flow"].shape == clip["dis"].shape == (2, 96, 128, 2)
    assert clip["meta"]["static"] and np.abs(clip["flow"]).max() < 1e-6
    np.testing.assert_array_equal(clip["dis"][0], classical_flow(clip["lq"][0], clip["lq"][1], "dis"))
    moving = render_mixture_clip(
        MixtureConfig(sizes=((96, 128),), static_prob=0.0, motion_min=0.1, motion_max=0.125), 3
    )
    assert np.abs(moving["flow"]).max() > 1


def test_mixture_motion_reaches_an_eighth_of_the_width():
    cfg = MixtureConfig(sizes=((128, 256),), static_prob=0.0)
    peaks = [np.abs(render_mixture_clip(cfg, s)["flow"]).max() for s in range(12)]
    assert max(peaks) > 256 / 16 and min(peaks) < 256 / 16


def test_cache_resumes_and_refuses_other_settings(tmp_path):
    build_cache(tmp_path / "m", 2, config="tiny", progress=False)
    first = (tmp_path / "m" / "000000.npz").stat().st_mtime_ns
    build_cache(tmp_path / "m", 3, config="tiny", progress=False)
    assert (tmp_path / "m" / "000000.npz").stat().st_mtime_ns == first
    cache = MixtureCache(tmp_path / "m")
    assert len(cache) == 3 and cache[2]["meta"]["size"] in [list(s) for s in MIXTURE_PRESETS["tiny"].sizes]
    with pytest.raises(ValueError, match="other settings"):
        build_cache(tmp_path / "m", 3, config="tiny", seed=1, progress=False)
    with pytest.raises(FileNotFoundError, match="no mixture clips"):
        MixtureCache(tmp_path / "empty")


def test_pairs_flip_keeps_flow_consistent(tmp_path):
    build_cache(tmp_path / "m", 2, config="tiny", progress=False)
    ds = MixturePairs(MixtureCache(tmp_path / "m"), (64, 64), seed=0)
    agree, total = 0.0, 0
    for i in range(6):
        item = ds[i]
        assert item["lq"].shape == (2, 3, 64, 64) and item["flow"].shape == item["dis"].shape == (2, 64, 64)
        # the DIS init and the exact flow are flipped together: they still agree in sign where DIS is good
        good = (item["dis"] - item["flow"]).norm(dim=0) < 0.5
        agree += float(torch.sign(item["dis"][0][good]).eq(torch.sign(item["flow"][0][good])).float().sum())
        total += int(good.sum())
    assert total > 600 and agree / total > 0.5
    assert torch.equal(ds[4]["lq"], ds[4]["lq"])  # a pure function of the counter


def test_coarse_batch_is_what_the_pyramid_gives_a_coarser_level():
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(0)
    flow = torch.randn(2, 2, 32, 48, generator=g) * 5
    valid = torch.ones(2, 32, 48)
    valid[0, 3, 5] = 0
    batch = {"lq": torch.rand(2, 2, 3, 32, 48, generator=g) * 255, "flow": flow, "dis": flow + 1, "valid": valid}
    out = coarse_batch(batch)
    assert out["lq"].shape == (2, 2, 3, 16, 24) and out["flow"].shape == out["dis"].shape == (2, 2, 16, 24)
    # frames area-downsampled as refine_pyramid's coarser level downsamples them, pixel values unchanged
    assert torch.allclose(out["lq"][1, 0], F.interpolate(batch["lq"][1, :1], scale_factor=0.5, mode="area")[0])
    # a 2x2 block's mean motion in half-size pixels
    assert torch.allclose(out["flow"][0, :, 0, 0], flow[0, :, :2, :2].mean((-1, -2)) / 2)
    assert torch.allclose(out["dis"] - out["flow"], torch.full_like(out["flow"], 0.5))
    assert out["valid"][0, 1, 2] == 0 and out["valid"].sum() == 2 * 16 * 24 - 1


def test_coarse_steps_train_and_need_halvable_crops(tmp_path):
    with pytest.raises(ValueError, match="multiples of 16"):
        RefineTrainConfig(crop=(64, 64), coarse_prob=0.5)
    with pytest.raises(ValueError, match="coarse_prob"):
        RefineTrainConfig(coarse_prob=1.5)
    build_cache(tmp_path / "m", 2, config=MixtureConfig(sizes=((128, 128),), num_frames=3), progress=False)
    cfg = RefineTrainConfig(steps=2, batch=1, crop=(128, 128), iters=2, save_every=2, log_every=1, coarse_prob=1.0)
    summary = train_refiner(tmp_path / "m", tmp_path / "r", cfg, progress=False)
    assert summary["steps"] == 2 and np.isfinite(summary["last_loss"])
    import dataclasses

    with pytest.raises(ValueError, match="coarse_prob"):  # the run refuses to go on without its coarse steps
        train_refiner(tmp_path / "m", tmp_path / "r", dataclasses.replace(cfg, coarse_prob=0.0), progress=False)


def test_dis_init_is_the_area_mean_in_eighth_pixels():
    f = torch.arange(2 * 16 * 24, dtype=torch.float32).view(1, 2, 16, 24)
    init = dis_init(f)
    assert init.shape == (1, 2, 2, 3)
    assert torch.allclose(init[0, :, 0, 0], f[0, :, :8, :8].mean((-1, -2)) / 8)
    with pytest.raises(ValueError, match="multiples of 8"):
        dis_init(torch.zeros(1, 2, 10, 16))


def test_refiner_starts_at_dis_and_upsamples_convexly():
    model = init_refiner(None).eval()
    assert isinstance(model, RAFT) and hasattr(model.update_block, "mask")
    a = torch.rand(1, 3, 70, 90) * 255
    dis = torch.randn(1, 2, 70, 90)
    with torch.no_grad():
        out = refine(model, a, a, dis, iters=2)
        padder = InputPadder(a.shape)
        pa, pd = padder.pad_images(a, dis)
        fmaps = (model.features(pa), model.features(pa))  # each frame encoded alone, as refine() encodes them
        every = model(pa, pa, iters=2, flow_init=dis_init(pd), fmaps=fmaps)  # every iteration upsampled (training's)
    assert out.flow.shape == (1, 2, 70, 90) and len(out.flow_predictions) == 1  # the final flow alone (inference)
    assert len(every.flow_predictions) == 2 and torch.equal(out.flow, padder.unpad(every.flow))


def test_init_from_plain_raft_small_zeroes_the_mask_head(tmp_path):
    from safetensors.torch import save_file

    plain = RAFT(small=True)
    save_file(plain.state_dict(), str(tmp_path / "r.safetensors"))
    model = init_refiner(tmp_path / "r.safetensors")
    assert torch.count_nonzero(model.update_block.mask[2].weight) == 0
    assert torch.equal(model.fnet.conv1.weight, plain.fnet.conv1.weight)


def test_train_resume_and_load_as_estimator(tmp_path):
    from daflow.models.registry import dis_raft_estimator
    from daflow.recipe.bundle import bundle_refiner

    build_cache(tmp_path / "m", 3, config="tiny", progress=False)
    cfg = REFINE_PRESETS["tiny"]
    train_refiner(tmp_path / "m", tmp_path / "a", cfg, progress=False)
    train_refiner(tmp_path / "m", tmp_path / "b", cfg, progress=False, stop_at=3)
    train_refiner(tmp_path / "m", tmp_path / "b", cfg, progress=False)
    wa = load_raft(tmp_path / "a" / "model" / "raft.safetensors", small=True, convex=True).state_dict()
    wb = load_raft(tmp_path / "b" / "model" / "raft.safetensors", small=True, convex=True).state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)  # an interrupted run ends where the uninterrupted one does
    (tmp_path / "a" / "mixture").symlink_to(tmp_path / "m")
    folder = bundle_refiner(tmp_path / "a", tmp_path / "weights", command="test")
    record = json.loads((folder / "PROVENANCE.json").read_text())
    assert record["command"] == "test" and record["training"]["steps"] == cfg.steps and record["mixture"]["n"] == 3
    est = dis_raft_estimator(iters=2, root=tmp_path / "weights")
    frames = torch.rand(2, 3, 64, 72) * 255
    assert est(frames[:1], frames[1:]).shape == (1, 2, 64, 72)


def test_fallback_keeps_dis_only_where_it_is_photometrically_much_better():
    import torch.nn.functional as F

    from daflow.models.refine import box_mean, keep_dis_where_better

    g = torch.Generator().manual_seed(0)
    for shape in ((2, 1, 48, 64), (1, 1, 5, 7)):  # the box mean is avg_pool2d's, frames smaller than the window too
        x = torch.rand(*shape, generator=g) * 255
        ref = F.avg_pool2d(x, 9, stride=1, padding=4, count_include_pad=False)
        assert torch.allclose(box_mean(x, 9), ref, atol=1e-3)
    a = F.avg_pool2d(torch.rand(1, 3, 48, 64, generator=g) * 255, 3, stride=1, padding=1)
    b = torch.roll(a, shifts=2, dims=-1)  # frame 2 = frame 1 moved 2 px right: the true flow is (2, 0)
    true = torch.zeros(1, 2, 48, 64)
    true[:, 0] = 2.0
    wrong = true.clone()
    wrong[:, 0, :, :32] = 2.3  # the refined flow a little off on the left half (DIS better by far less than 16)
    wrong[..., :, 32:] = -3.0  # and far off on the right half
    out = keep_dis_where_better(a, b, wrong, true, margin=16.0)
    inner = (slice(None), slice(None), slice(8, 40), slice(44, 60))
    assert torch.equal(out[inner], true[inner])  # DIS kept where the refined flow is far off
    assert torch.equal(out[..., :, :24], wrong[..., :, :24])  # a small advantage: the refined flow stays
    assert torch.equal(keep_dis_where_better(a, b, wrong, true, margin=1e6), wrong)  # no margin met: never DIS


def test_pyramid_levels_and_coarse_to_fine_recovers_a_translation():
    from daflow.models.refine import pyramid_levels, refine_pyramid

    assert pyramid_levels((200, 300)) == 1 and pyramid_levels((256, 256)) == 1 and pyramid_levels((384, 512)) == 2
    assert pyramid_levels((1080, 1920)) == 3 and pyramid_levels((64, 64)) == 1
    model = init_refiner(None).eval()
    a = torch.rand(1, 3, 390, 400) * 255
    with torch.no_grad():
        flow = refine_pyramid(model, a, a, torch.zeros(1, 2, 390, 400), iters=1)
        one = refine_pyramid(model, a, a, torch.zeros(1, 2, 390, 400), iters=1, levels=1)
    assert flow.shape == one.shape == (1, 2, 390, 400)
    # the bundled refiner, coarse to fine, recovers a known translation of a real-looking frame
    from daflow.data.synthetic import SyntheticConfig, render_clip
    from daflow.models.bundled import REFINER, bundled_path
    from daflow.models.raft_weights import load_raft

    frame = render_clip(SyntheticConfig(height=390, width=400, num_frames=2), 3).frames[0]
    a = torch.from_numpy(frame).permute(2, 0, 1)[None].float()
    b = torch.roll(a, shifts=(3, 6), dims=(-2, -1))  # content moves 6 px right, 3 px down
    trained = load_raft(bundled_path(REFINER) / "raft.safetensors", small=True, convex=True).eval()
    with torch.no_grad():
        flow = refine_pyramid(trained, a, b, iters=4)
    inner = flow[0, :, 40:-40, 40:-40]
    assert (inner - torch.tensor([6.0, 3.0]).view(2, 1, 1)).norm(dim=0).mean() < 1.0
    with pytest.raises(ValueError, match="levels"):
        refine_pyramid(model, a, a, torch.zeros(1, 2, 390, 400), levels=0)


@pytest.mark.parametrize(
    ("size", "iters", "expected"),
    [((200, 256), None, [8]), ((390, 400), None, [2, 1]), ((800, 800), None, [2, 2, 1]), ((390, 400), 3, [3, 3])],
)
def test_pyramid_iterations_a_level(monkeypatch, size, iters, expected):
    """Default: 8 on one level; on a pyramid 2 on each coarser level and 1 on the finest (coarse first); an explicit
    count applies to every level."""
    import daflow.models.refine as refine_module

    calls = []

    def spy(model, image1, image2, dis=None, *, iters, extras=None, memo=None, encodings=None):
        calls.append((iters, tuple(image1.shape[-2:])))
        return refine(model, image1, image2, dis, iters=iters, extras=extras, memo=memo, encodings=encodings)

    monkeypatch.setattr(refine_module, "refine", spy)
    model = init_refiner(None).eval()
    a = torch.rand(1, 3, *size) * 255
    with torch.no_grad():
        refine_module.refine_pyramid(model, a, a, torch.zeros(1, 2, *size), iters=iters)
    assert [n for n, _ in calls] == expected and calls[-1][1] == size


def test_mixture_clips_are_the_same_in_two_processes(tmp_path):
    import subprocess
    import sys

    code = "import sys; from daflow.train.mixture import build_cache; build_cache(sys.argv[1], 2, config='tiny', progress=False)"
    for name in ("a", "b"):
        subprocess.run([sys.executable, "-c", code, str(tmp_path / name)], check=True)
    a, b = MixtureCache(tmp_path / "a"), MixtureCache(tmp_path / "b")
    for i in range(2):
        for key in ("lq", "flow", "dis"):
            assert a[i][key].tobytes() == b[i][key].tobytes(), (i, key)


def test_train_refine_refuses_no_clips(tmp_path, capsys):
    from daflow.cli import main

    assert main(["train", "refine", "-o", str(tmp_path / "r"), "--clips", "0", "--no-progress"]) == 1
    assert "--clips must be >= 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
    assert main(["train", "refine", "-o", str(tmp_path / "r"), "--coarse-prob", "2", "--no-progress"]) == 1
    assert "coarse_prob must be in [0, 1], got 2.0" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_feature_memo_lends_a_shared_frame_and_changes_no_flow():
    from daflow.models.refine import FeatureMemo, refine_pyramid

    model = init_refiner(None).eval()
    encoded = []
    features = model.features
    model.features = lambda x: encoded.append(x.shape[0]) or features(x)
    g = torch.Generator().manual_seed(0)
    frames = torch.rand(4, 3, 64, 72, generator=g) * 255
    zero = torch.zeros(1, 2, 64, 72)
    memo = FeatureMemo()
    with torch.no_grad():
        shared = [refine_pyramid(model, frames[k : k + 1], frames[k + 1 : k + 2], zero, memo=memo) for k in range(3)]
        assert sum(encoded) == 4  # each of the 4 frames encoded once
        alone = [
            refine_pyramid(model, frames[k : k + 1], frames[k + 1 : k + 2], zero, memo=FeatureMemo()) for k in range(3)
        ]
        assert sum(encoded) == 4 + 6
        assert all(torch.equal(a, b) for a, b in zip(shared, alone))  # lent features: the same flows to the bit
        # a caller that reuses its frame's memory for the next frame gets that frame's features, not stale ones
        buffer = frames[1:2].clone()
        memo = FeatureMemo()
        refine_pyramid(model, frames[:1], buffer, zero, memo=memo)
        buffer.copy_(frames[3:4])
        reused = refine_pyramid(model, frames[1:2], buffer, zero, memo=memo)
        assert torch.equal(reused, refine_pyramid(model, frames[1:2], frames[3:4], zero, memo=FeatureMemo()))
        # a pair and then its backward pair (daflow estimate --backward): the second encodes nothing
        memo, before = FeatureMemo(), sum(encoded)
        forward = refine_pyramid(model, frames[:1], frames[1:2], zero, memo=memo)
        backward = refine_pyramid(model, frames[1:2], frames[:1], zero, memo=memo)
        assert sum(encoded) == before + 2
        assert torch.equal(forward, alone[0])
        assert torch.equal(backward, refine_pyramid(model, frames[1:2], frames[:1], zero, memo=FeatureMemo()))
        # batches of pairs are encoded as RAFT does, without the memo
        both = refine_pyramid(model, frames[:2], frames[1:3], zero.expand(2, -1, -1, -1), memo=memo)
        assert both.shape == (2, 2, 64, 72)


def test_raft_takes_precomputed_features():
    model = RAFT(small=True).eval()
    g = torch.Generator().manual_seed(1)
    a, b = (torch.rand(1, 3, 64, 64, generator=g) * 255 for _ in range(2))
    with torch.no_grad():
        plain = model(a, b, iters=2).flow
        lent = model(a, b, iters=2, fmaps=(model.features(a), model.features(b))).flow
    assert torch.allclose(plain, lent, atol=1e-4)


def test_raft_takes_precomputed_context_and_checks_both_shapes():
    model = RAFT(small=True).eval()
    g = torch.Generator().manual_seed(2)
    a, b = (torch.rand(1, 3, 64, 64, generator=g) * 255 for _ in range(2))
    with torch.no_grad():
        plain = model(a, b, iters=2)
        lent = model(a, b, iters=2, context=model.context(a))
        assert torch.equal(plain.flow, lent.flow)
        assert torch.equal(plain.encodings.context, model.context(a))
        assert torch.allclose(plain.encodings.fmap2, model.features(b), atol=1e-3)  # a batch of two rounds apart
        with pytest.raises(ValueError, match=r"context must be \(1, 160, 8, 8\)"):
            model(a, b, iters=1, context=torch.zeros(1, 160, 4, 4))
        with pytest.raises(ValueError, match=r"fmaps must be \(1, 128, 8, 8\)"):
            model(a, b, iters=1, fmaps=(torch.zeros(1, 128, 9, 8), torch.zeros(1, 128, 9, 8)))


def test_encodings_resize_bilinearly_and_keep_their_own_grid():
    from daflow.models.raft import Encodings

    ramp = torch.arange(4.0).view(1, 1, 1, 4).expand(1, 2, 3, 4)
    enc = Encodings(ramp, ramp + 1, ramp + 2)
    assert enc.resized((3, 4)).fmap1 is ramp
    up = enc.resized((6, 8))
    assert up.context.shape == (1, 2, 6, 8)
    assert torch.allclose(up.fmap2[0, 0, 0], torch.tensor([1.0, 1.25, 1.75, 2.25, 2.75, 3.25, 3.75, 4.0]))


def test_the_finest_level_reuses_the_coarser_levels_encodings(monkeypatch):
    """On a pyramid the encoders run on the coarser levels only: the finest level of the refiner takes the next
    coarser level's frame features and context, bilinearly resized (measured: BENCHMARKS.md, "The default at video
    speed"); a coarser level that runs no iteration leaves the finest to encode its frames itself."""
    import daflow.models.refine as refine_module

    model = init_refiner(None).eval()
    sizes = []
    for name in ("features", "context"):
        method = getattr(model, name)
        monkeypatch.setattr(model, name, lambda x, m=method, n=name: sizes.append((n, tuple(x.shape[-2:]))) or m(x))
    g = torch.Generator().manual_seed(3)
    a, b = (torch.rand(1, 3, 390, 400, generator=g) * 255 for _ in range(2))
    dis = torch.randn(1, 2, 390, 400, generator=g)
    with torch.no_grad():
        flow = refine_module.refine_pyramid(model, a, b, dis)
        assert sorted(sizes) == [("context", (200, 200)), ("features", (200, 200)), ("features", (200, 200))]
        # the same as refining the finest level by hand with the coarse level's encodings
        half = [torch.nn.functional.interpolate(x, scale_factor=0.5, mode="area") for x in (a, b)]
        coarse = refine(model, *half, resize_flow(dis, (195, 200), "area"), iters=refine_module.PYRAMID_ITERS)
        init = resize_flow(coarse.flow, (390, 400), "bilinear")
        fine = refine(model, a, b, init, iters=refine_module.FINEST_ITERS, encodings=coarse.encodings)
        assert torch.equal(flow, fine.flow)
        monkeypatch.setattr(refine_module, "PYRAMID_ITERS", 0)
        sizes.clear()
        refine_module.refine_pyramid(model, a, b, dis)
        assert sorted(sizes) == [("context", (392, 400)), ("features", (392, 400)), ("features", (392, 400))]
