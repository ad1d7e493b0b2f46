"""The video fidelity head: neighbours aligned by the flow, the head that fuses them, its cached training data and
its place in ``daflow restore`` (the frames around each chunk)."""

import numpy as np
import pytest
import torch

from daflow.data.video import FrameSource
from daflow.files import write_image
from daflow.models.backbone import DiffusionBackbone
from daflow.models.fidelity import FidelityConfig, FidelityHead, load_fidelity, save_fidelity
from daflow.restoration import RestoreSettings, restore_video
from daflow.restoration.consistency import psnr
from daflow.restoration.temporal import align_neighbours
from daflow.train.fidelity import PreparedClips


def _texture(h=32, w=40, shift=0.0):
    yy, xx = torch.meshgrid(torch.arange(float(h)), torch.arange(float(w)), indexing="ij")
    return (128 + 60 * torch.sin((xx - shift) / 3) * torch.cos(yy / 4)).expand(3, h, w)


def test_align_neighbours_undoes_a_known_translation():
    """Frames shifted by 2 px a step: the neighbours warp back onto the middle frame exactly (inside the frame), are
    visible there, invisible where the sample leaves the frame, and all zero where no neighbour exists."""
    frames = torch.stack([_texture(shift=2.0 * k) for k in range(3)])
    fw = torch.zeros(2, 2, 32, 40)
    fw[:, 0] = 2.0
    bw = -fw
    nbr = align_neighbours(frames, fw, bw, range(3))
    assert nbr.shape == (3, 2, 4, 32, 40)
    inner = (slice(None), slice(4, -4))
    for slot in (0, 1):
        np.testing.assert_allclose(nbr[1, slot, :3][:, inner[0], inner[1]], frames[1][:, :, 4:-4], atol=1e-3)
    assert nbr[1, :, 3, :, 4:-4].min() == 1.0
    assert nbr[1, 1, 3, :, -1].max() == 0.0  # frame 2 sampled 2 px right of the last column: outside
    assert nbr[0, 0].abs().max() == 0.0 and nbr[2, 1].abs().max() == 0.0  # frame −1 and frame 3 do not exist


def test_video_head_starts_as_the_identity_checks_its_inputs_and_round_trips(tmp_path):
    head = FidelityHead(FidelityConfig(channels=8, blocks=1, neighbours=2, context=True))
    lq, prior = torch.rand(2, 3, 16, 24) * 255, torch.rand(2, 3, 16, 24) * 255
    nbr = torch.rand(2, 2, 4, 16, 24)
    assert torch.equal(head(lq, prior, nbr), lq)
    with pytest.raises(ValueError, match=r"needs neighbours \[N, 2, 4, H, W\]"):
        head(lq, prior)
    torch.nn.init.normal_(head.conv_out.weight, std=0.01)
    out = head(lq, prior, nbr)
    assert not torch.equal(out, head(lq, prior, nbr * 0.5))  # the neighbours reach the output
    hidden = nbr.clone()
    hidden[:, :, :3] += 40  # what an invisible neighbour holds does not matter
    hidden[:, :, 3] = 0
    shown = nbr.clone()
    shown[:, :, 3] = 0
    assert torch.equal(head(lq, prior, hidden), head(lq, prior, shown))
    assert torch.equal(load_fidelity(save_fidelity(head, tmp_path / "h"))(lq, prior, nbr), out)
    with pytest.raises(ValueError, match="neighbours must be 0 or 2"):
        FidelityConfig(neighbours=1)


def test_video_head_uses_aligned_neighbours_to_denoise_better_than_one_frame():
    """The same steps of the head's L1 objective on a static texture with independent noise in every frame: the
    head that sees the two neighbours ends closer to the clean frame than the per-frame head (a random texture:
    nothing in one frame tells the noise from the detail)."""
    clean = (torch.rand(1, 3, 24, 32, generator=torch.Generator().manual_seed(1)) * 200 + 28).expand(4, 3, 24, 32)
    ones = torch.ones(4, 1, 24, 32)
    results = {}
    for k in (0, 2):
        g = torch.Generator().manual_seed(0)
        torch.manual_seed(0)
        head = FidelityHead(FidelityConfig(channels=16, blocks=2, neighbours=k, use_prior=False))
        opt = torch.optim.Adam(head.parameters(), lr=2e-3)

        def noisy_batch(g=g, k=k):
            frames = [clean + 25 * torch.randn(clean.shape, generator=g) for _ in range(3)]
            nbr = torch.stack([torch.cat([frames[0], ones], 1), torch.cat([frames[2], ones], 1)], 1)
            return frames[1], (nbr if k else None)

        for _ in range(150):
            x, nbr = noisy_batch()
            loss = ((head(x, x, nbr) - clean) / 255).abs().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        x, nbr = noisy_batch()
        with torch.no_grad():
            out = head(x, x, nbr)
        as_u8 = lambda t: t.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()  # noqa: E731
        results[k] = psnr(as_u8(out), as_u8(clean))
    assert results[2] > results[0] + 2.0, results


def test_prepared_clips_serve_aligned_crops():
    n, f, h, w = 3, 3, 24, 32
    g = torch.Generator().manual_seed(0)
    clips = {
        "hq": torch.randint(0, 256, (n, f, 3, h, w), generator=g, dtype=torch.uint8),
        "lq": torch.randint(0, 256, (n, f, 3, h, w), generator=g, dtype=torch.uint8),
        "prior": torch.rand(n, f, 3, h, w, generator=g).half(),
        "neighbours": torch.rand(n, f, 2, 4, h, w, generator=g).half(),
    }
    data = PreparedClips(clips, crop=(16, 16), seed=3)
    a, b = data[5], data[5]
    assert a["hq"].shape == (f, 3, 16, 16) and a["neighbours"].shape == (f, 2, 4, 16, 16)
    assert all(torch.equal(a[k], b[k]) for k in a)  # a pure function of the counter
    # the crop is the same window of every field: find it in the HQ frames and check the others
    index = next(
        i
        for i in range(n)
        for top in range(9)
        for left in range(17)
        if torch.equal(clips["hq"][i, ..., top : top + 16, left : left + 16].float(), a["hq"])
    )
    top, left = next(
        (t, l)
        for t in range(9)
        for l in range(17)  # noqa: E741
        if torch.equal(clips["hq"][index, ..., t : t + 16, l : l + 16].float(), a["hq"])
    )
    assert torch.equal(clips["neighbours"][index, ..., top : top + 16, left : left + 16].float(), a["neighbours"])
    with pytest.raises(ValueError, match="larger than the prepared frames"):
        PreparedClips(clips, crop=(32, 32))


def test_restore_gives_the_video_head_the_frames_around_each_chunk(tmp_path, monkeypatch):
    """``daflow restore`` with a video head: every new frame's neighbours come from the whole video, so only the
    video's first frame lacks a frame before it and only its last frame lacks one after it."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    for k in range(6):
        write_image(tmp_path / "lq" / f"frame_{k:04d}.png", np.ascontiguousarray(np.roll(base, k, axis=1)[:32, :48]))
    backbone = DiffusionBackbone.from_preset("tiny", seed=0).eval()
    backbone.fidelity = FidelityHead(FidelityConfig(channels=8, blocks=1, neighbours=2)).eval()
    seen = []
    real = backbone.fidelity.forward
    monkeypatch.setattr(backbone.fidelity, "forward", lambda lq, p, nbr=None: (seen.append(nbr), real(lq, p, nbr))[1])
    from daflow.api import load_model

    settings = RestoreSettings(
        sampler="one-step", sigma=0.5, guidance=0.0, prefilter=False, flow_model="dis", ensemble=1
    )  # one pass of the head a frame: ``seen`` holds each frame's neighbours once, untransformed
    with pytest.raises(ValueError, match="video fidelity head"):
        restore_video(backbone, FrameSource(tmp_path / "lq"), tmp_path / "x", settings, progress=False)
    est = load_model("dis").clip
    restore_video(
        backbone, FrameSource(tmp_path / "lq"), tmp_path / "out", settings, flow_estimator=est, progress=False
    )
    assert len(list((tmp_path / "out" / "frames").glob("*.png"))) == 6
    visible = torch.cat(seen)[:, :, 3].flatten(2).amax(2)  # [6 new frames, 2 slots]: any visible pixel
    assert visible[0, 0] == 0 and visible[-1, 1] == 0
    assert visible[1:, 0].min() == 1 and visible[:-1, 1].min() == 1


def test_context_lets_the_whole_frame_steer_every_pixel():
    """Without context a pixel's output depends on a window of a few dozen pixels; with it (once trained: here the
    FiLM layers set to random values) a change far outside that window changes it too."""
    torch.manual_seed(0)
    lq = torch.rand(1, 3, 64, 128) * 255
    far = lq.clone()
    far[..., 96:] = 255 - far[..., 96:]  # change the right quarter only
    for context in (False, True):
        head = FidelityHead(FidelityConfig(channels=8, blocks=1, context=context)).eval()
        torch.nn.init.normal_(head.conv_out.weight, std=0.01)
        for block in head.blocks:
            if block.film is not None:
                torch.nn.init.normal_(block.film.weight, std=0.1)
        with torch.no_grad():
            changed = (head(lq, lq) - head(far, far))[..., :32].abs().max()  # the left quarter
        assert (changed > 0) == context


def test_a_single_frame_is_restored_without_neighbours(tmp_path):
    """One frame has no pair: no guidance, no neighbour to align; the video head still restores it."""
    write_image(tmp_path / "lq" / "frame_0000.png", np.random.default_rng(0).integers(0, 256, (32, 48, 3), np.uint8))
    backbone = DiffusionBackbone.from_preset("tiny", seed=0).eval()
    backbone.fidelity = FidelityHead(FidelityConfig(channels=8, blocks=1, neighbours=2, context=True)).eval()
    from daflow.api import load_model

    report = restore_video(
        backbone,
        FrameSource(tmp_path / "lq"),
        tmp_path / "out",
        RestoreSettings(sampler="one-step", sigma=0.5, flow_model="dis"),
        flow_estimator=load_model("dis").clip,
        progress=False,
    )
    assert report.frames == 1 and FrameSource(tmp_path / "out" / "frames").read(0, 1).shape == (1, 32, 48, 3)


def test_self_ensemble_is_equivariant_and_averages_the_transformed_outputs():
    """``apply_head`` with 1 transform is the head; with 8 it averages the head over the dihedral group: the same
    average whichever of the 8 orientations the frame comes in (an untrained head's output is its input); and a bad
    ensemble size is an error naming the option."""
    from daflow.models.fidelity import apply_head

    torch.manual_seed(0)
    head = FidelityHead(FidelityConfig(channels=8, blocks=1, neighbours=2, context=True))
    torch.nn.init.normal_(head.conv_out.weight, std=0.05)
    lq, prior = torch.rand(2, 3, 16, 16) * 255, torch.rand(2, 3, 16, 16) * 255
    nbr = torch.rand(2, 2, 4, 16, 16)
    assert torch.equal(apply_head(head, lq, prior, nbr, ensemble=1), head(lq, prior, nbr))
    out = apply_head(head, lq, prior, nbr, ensemble=8)
    assert not torch.allclose(out, head(lq, prior, nbr), atol=1e-2)  # the transforms change what the head sees
    for turn in (lambda a: a.flip(-1), lambda a: a.transpose(-1, -2), lambda a: a.flip(-2).transpose(-1, -2)):
        moved = apply_head(head, turn(lq), turn(prior), turn(nbr), ensemble=8)
        torch.testing.assert_close(moved, turn(out), atol=1e-3, rtol=0)
    # a non-square frame: the transposed passes see it lying on its side and are turned back
    wide = torch.rand(1, 3, 8, 12) * 255
    wide_nbr = torch.rand(1, 2, 4, 8, 12)
    assert apply_head(head, wide, wide, wide_nbr, ensemble=8).shape == (1, 3, 8, 12)
    untrained = FidelityHead(FidelityConfig(channels=8, blocks=1))
    torch.testing.assert_close(apply_head(untrained, lq, prior, ensemble=4), lq)
    with pytest.raises(ValueError, match="--ensemble must be one of"):
        apply_head(head, lq, prior, nbr, ensemble=3)
    with pytest.raises(ValueError, match="--ensemble must be one of"):
        RestoreSettings(ensemble=5)


def test_prepared_clips_with_the_prefilter_hold_what_restore_gives_the_head():
    """``prepare_clips(prefilter=…)``: the LQ frames the head trains on are the temporal filter's output of the raw
    LQ frames (as ``daflow restore``'s default prefilter makes them), the prior and the aligned neighbours are
    computed from those; without a flow model the prefilter is a clear error."""
    from types import SimpleNamespace

    from daflow.api import load_model
    from daflow.restoration.temporal import TemporalSettings, align_neighbours, filter_window
    from daflow.train.fidelity import prepare_clips

    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8).astype(np.float32)
    hq = np.stack([np.roll(base, k, axis=1)[:32, :48] for k in range(3)]).astype(np.uint8)
    lq = np.clip(hq + rng.normal(0, 12, hq.shape), 0, 255).astype(np.uint8)
    source = SimpleNamespace(clips=[SimpleNamespace(frames=hq)], lq_mirror=[SimpleNamespace(frames=lq)])
    backbone = DiffusionBackbone.from_preset("tiny", seed=0).eval()
    flow = load_model("dis")
    settings = TemporalSettings()
    clips = prepare_clips(backbone, source, sigma=0.5, flow_model=flow, prefilter=settings, progress=False)
    filtered = filter_window(lq, flow.clip, settings)
    assert not np.array_equal(filtered, lq)
    assert np.array_equal(clips["lq"][0].permute(0, 2, 3, 1).numpy(), filtered)
    raw = prepare_clips(backbone, source, sigma=0.5, flow_model=flow, progress=False)
    assert np.array_equal(raw["lq"][0].permute(0, 2, 3, 1).numpy(), lq)
    x = torch.from_numpy(filtered).permute(0, 3, 1, 2).float()
    from daflow.restoration.diffusion import clip_flows

    flows = clip_flows(flow.clip, filtered, flow.device)
    expected = align_neighbours(x, flows.fw, flows.bw, range(3)).half()
    assert torch.equal(clips["neighbours"][0], expected)
    with pytest.raises(ValueError, match="prefilter needs the flow model"):
        prepare_clips(backbone, source, sigma=0.5, prefilter=settings, progress=False)
