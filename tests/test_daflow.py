"""DA-Flow (paper §4.4, Eq. 13–17): DPT heads, the hybrid network, per-step flows, zero-init surgery, files."""

import dataclasses

import numpy as np
import pytest
import torch

from daflow.models.catalog import DAFLOW_ITERS
from daflow.models.daflow import DAFLOW_PRESETS, DAFlow, DAFlowConfig
from daflow.models.dpt import BilinearHead, DPTConfig, DPTHead, uv_position_embedding
from daflow.models.raft import RAFT


def _levels(b=2, h=3, w=5, c=16, n=4):
    return [torch.randn(b, h, w, c) for _ in range(n)]


@pytest.mark.parametrize("size", [(48, 80), (64, 48), (112, 96)])
def test_dpt_output_is_at_one_eighth_for_non_square_inputs(size):
    h, w = size[0] // 16, size[1] // 16
    head = DPTHead(dim_in=16, features=32, out_channels=(16, 32, 64, 64))
    out = head(_levels(h=h, w=w), size)
    assert out.shape == (2, 32, size[0] // 8, size[1] // 8)
    bil = BilinearHead(dim_in=16, features=32)
    assert bil(_levels(h=h, w=w), size).shape == out.shape


def test_dpt_level_scales_and_layouts():
    head = DPTHead(dim_in=16, features=8, out_channels=(4, 4, 8, 8), scales=(4, 2, 1, 0.5), pos_embed=False)
    assert isinstance(head.resize_layers[0], torch.nn.ConvTranspose2d) and head.resize_layers[0].stride == (4, 4)
    assert isinstance(head.resize_layers[2], torch.nn.Identity)
    assert head.resize_layers[3].stride == (2, 2)
    assert head(_levels(h=4, w=4), (64, 64)).shape == (2, 8, 8, 8)  # VGGT's own pyramid still lands on 1/8
    # the paper head: VGGT's parameter names, scales (1, 1, 2, 2)
    with torch.device("meta"):
        paper = DPTHead(DPTConfig())
    names = set(paper.state_dict())
    assert {
        "norm.weight",
        "projects.0.weight",
        "resize_layers.2.weight",
        "scratch.layer4_rn.weight",
        "scratch.refinenet1.resConfUnit1.conv1.weight",
        "scratch.refinenet4.resConfUnit2.conv2.bias",
        "scratch.refinenet2.out_conv.weight",
        "scratch.output_conv1.weight",
    } <= names
    assert "scratch.refinenet4.resConfUnit1.conv1.weight" not in names  # the coarsest level has no skip input
    assert "resize_layers.0.weight" not in names  # scale 1: identity
    with pytest.raises(ValueError, match="scales"):
        DPTConfig(scales=(1, 3, 2, 2))
    with pytest.raises(ValueError, match="4 levels"):
        DPTHead(dim_in=16, features=8, out_channels=(4, 4, 8, 8))(_levels(n=3), (48, 80))


def test_dpt_gradients_reach_every_parameter():
    head = DPTHead(dim_in=16, features=8, out_channels=(4, 4, 8, 8))
    levels = [t.requires_grad_() for t in _levels()]
    head(levels, (48, 80)).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())
    assert all(t.grad.abs().sum() > 0 for t in levels)


def test_uv_position_embedding_follows_vggt():
    pe = uv_position_embedding(8, 3, 4, aspect_ratio=4 / 3)
    assert pe.shape == (8, 3, 4)
    # x half: sin/cos of the x coordinate at frequencies 1 and 1/100^(1/2); columns vary, rows do not
    diag = ((4 / 3) ** 2 + 1) ** 0.5
    x0 = -(4 / 3) / diag * 3 / 4
    assert pe[0, 1, 0].item() == pytest.approx(torch.sin(torch.tensor(x0, dtype=torch.float64)).item(), abs=1e-6)
    assert pe[2, 2, 0].item() == pytest.approx(torch.cos(torch.tensor(x0, dtype=torch.float64)).item(), abs=1e-6)
    assert torch.equal(pe[:4, 0], pe[:4, 2]) and torch.equal(pe[4:, :, 0], pe[4:, :, 3])


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return DAFlow("tiny").eval()


def test_tiny_daflow_on_a_3_frame_clip_gives_every_pair_and_step(tiny):
    frames = torch.rand(1, 3, 3, 60, 72) * 255  # padded to 64x80 inside, cropped back
    with torch.no_grad():
        out = tiny(frames, iters=3)
    assert sorted(out.flows) == list(range(10))
    assert all(f.shape == (1, 2, 2, 60, 72) for f in out.flows.values())
    assert out.mean().shape == (1, 2, 2, 60, 72)
    with torch.no_grad():
        early = tiny(frames, steps=[0, 2], iters=3)
    assert sorted(early.flows) == [0, 2]
    for s in (0, 2):  # seeded: the same step gives the same flow whether or not later steps are run
        assert torch.equal(early.flows[s], out.flows[s])
    assert not torch.equal(out.flows[0], out.flows[9])  # the features change along the denoising
    with pytest.raises(ValueError, match="steps must lie"):
        tiny(frames, steps=[10])
    with pytest.raises(ValueError, match="F >= 2"):
        tiny(frames[:, :1])


def test_tiny_daflow_on_a_7_frame_clip(tiny):
    frames = torch.rand(2, 7, 3, 64, 64) * 255
    with torch.no_grad():
        out = tiny(frames, steps=[0], iters=2, return_predictions=True)
    assert out.flows[0].shape == (2, 6, 2, 64, 64)
    assert len(out.predictions[0]) == 2 and out.predictions[0][0].shape == (12, 2, 64, 64)


def test_daflow_equals_raft_when_the_diffusion_features_are_zero():
    torch.manual_seed(0)
    config = dataclasses.replace(DAFLOW_PRESETS["tiny"], raft="large")  # the tiny heads on RAFT-large
    raft = RAFT().eval()
    model = DAFlow(config).eval()
    model.init_raft(raft.state_dict())  # RAFT-large weights, GRU widened with zero columns
    frames = torch.rand(2, 3, 3, 64, 80) * 255
    b, f = 2, 3
    zeros = (torch.zeros(b * (f - 1), 32, 8, 10), torch.zeros(b * (f - 1), 32, 8, 10))
    context = torch.randn(b * (f - 1), 16, 8, 10)  # any context: its GRU columns are zero
    with torch.no_grad():
        ref = raft(frames[:, :-1].flatten(0, 1), frames[:, 1:].flatten(0, 1), iters=6)
        got = model.refine(frames, (*zeros, context), iters=6)
    assert torch.equal(ref.flow, got.flow)
    for a, c in zip(ref.flow_predictions, got.flow_predictions):
        assert torch.equal(a, c)


def test_daflow_flow_network_trains_and_the_backbone_stays_frozen(tiny):
    frames = torch.rand(1, 3, 3, 64, 64) * 255
    tiny.train()
    assert not tiny.backbone.training and not tiny.backbone.transformer.training
    out = tiny(frames, steps=[0], iters=2, return_predictions=True)
    out.predictions[0][-1].abs().mean().backward()
    assert all(p.grad is None for p in tiny.backbone.parameters())
    for name in ("dpt_q", "dpt_k", "dpt_ctx", "raft"):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in getattr(tiny, name).parameters()), name
    tiny.zero_grad(set_to_none=True)
    tiny.eval()


def test_daflow_save_and_load_round_trip(tmp_path, tiny):
    tiny.save(tmp_path / "m")
    loaded = DAFlow.load(tmp_path / "m")
    assert loaded.config == tiny.config
    frames = torch.rand(1, 2, 3, 64, 64) * 255
    with torch.no_grad():
        assert torch.equal(tiny(frames, steps=[1], iters=2).flows[1], loaded(frames, steps=[1], iters=2).flows[1])
    (tmp_path / "m" / "flownet.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="flownet.safetensors"):
        DAFlow.load(tmp_path / "m")


def test_paper_preset_on_meta():
    with torch.device("meta"):
        model = DAFlow(DAFLOW_PRESETS["paper"])
    flownet = sum(v.numel() for v in model.flownet_state_dict().values())
    assert model.dpt_q.config.dim_in == 1536 and model.dpt_ctx.config.features == 128
    assert model.raft.update_block.gru.convz1.weight.shape == (128, 128 + 128 + 128 + 128, 1, 5)
    assert 60e6 < flownet < 100e6  # 3 DPT heads (~28 + 28 + 18 M) + RAFT-large (5.3 M)
    with pytest.raises(ValueError, match="do not exist"):
        DAFlow(DAFlowConfig(backbone="tiny", blocks=(3, 13, 16, 17)))


# ------------------------------------------------------------------------------- chunks, estimate, evaluate


def test_chunk_plan_covers_every_pair_exactly_once():
    from daflow.data.base import CHUNKS, window_plan

    for n in range(3, 30):
        plan = window_plan(n, 3, CHUNKS)
        scored = [s + j for s, first in plan for j in range(first, 2)]
        assert scored == list(range(n - 1)), n
    assert window_plan(2, 3, CHUNKS) == []
    assert window_plan(6, 3, CHUNKS) == [(0, 0), (2, 0), (3, 1)]


def test_estimate_writes_every_pair_and_resumes_identically(tmp_path, tiny):
    from daflow.data.video import write_video
    from daflow.flow.io import read_flow
    from daflow.inference import daflow_estimator, estimate_video

    rng = torch.Generator().manual_seed(0)
    frames = (torch.rand(6, 64, 80, 3, generator=rng) * 255).to(torch.uint8).numpy()
    video = tmp_path / "clip.mp4"
    write_video(video, frames, fps=10)
    est = daflow_estimator(tiny, step=0, iters=2)
    full = estimate_video(est, video, tmp_path / "a", backward=True, occlusion=True, viz=True, progress=False)
    assert full.pairs == 5 and full.written == 5
    names = sorted(p.name for p in (tmp_path / "a" / "flow").iterdir())
    assert names == [f"{i:06d}.flo" for i in range(5)]
    flow, _ = read_flow(tmp_path / "a" / "flow" / "000004.flo")
    assert flow.shape == (64, 80, 2)
    for sub in ("backward", "occlusion", "viz"):
        assert len(list((tmp_path / "a" / sub).iterdir())) == 5
    # an interrupted run: only the first chunk's files exist; the resumed run writes the rest, identically
    partial = tmp_path / "b"
    estimate_video(est, video, partial, progress=False)
    for name in names[2:]:
        (partial / "flow" / name).unlink()
    resumed = estimate_video(est, video, partial, progress=False)
    assert resumed.written == 3 and resumed.skipped == 2
    for name in names:
        assert read_flow(partial / "flow" / name)[0].tobytes() == read_flow(tmp_path / "a" / "flow" / name)[0].tobytes()
    # batching chunks changes only the float rounding (each chunk's noise follows its start frame)
    estimate_video(est, video, tmp_path / "c", batch=3, progress=False)
    for name in names:
        np.testing.assert_allclose(
            read_flow(tmp_path / "c" / "flow" / name)[0], read_flow(tmp_path / "a" / "flow" / name)[0], atol=1e-3
        )
    with pytest.raises(ValueError, match="step must be"):
        daflow_estimator(tiny, step=12)
    # no iterations asked for: the module's default, the paper's 20 (a refiner-based DA-Flow leaves them to its pyramid)
    assert tiny.default_iters == DAFLOW_ITERS and f"{DAFLOW_ITERS} iterations" in daflow_estimator(tiny).description


def test_estimate_cli_with_a_pairwise_model_and_bad_input(tmp_path, capsys, monkeypatch):
    import daflow.models.bundled as bundled
    from daflow.cli import main
    from daflow.files import write_image

    for i in range(3):
        write_image(tmp_path / "frames" / f"f{i}.png", (torch.rand(64, 64, 3) * 255).to(torch.uint8).numpy())
    assert (
        main(
            [
                "estimate",
                str(tmp_path / "frames"),
                "-o",
                str(tmp_path / "out"),
                "--model",
                "dis",
                "--format",
                "npy",
                "--no-progress",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in (tmp_path / "out" / "flow").iterdir()) == ["f0.npy", "f1.npy"]
    assert main(["estimate", str(tmp_path / "nothing"), "-o", str(tmp_path / "o2"), "--model", "dis"]) == 1
    assert "input not found" in capsys.readouterr().err
    monkeypatch.setattr(bundled, "BUNDLE_DIR", tmp_path / "no-weights")  # an installation without the bundle
    assert main(["estimate", str(tmp_path / "frames"), "-o", str(tmp_path / "o3")]) == 1
    assert "--weights" in capsys.readouterr().err


def test_evaluate_daflow_per_step_table(tmp_path, capsys):
    from daflow.cli import main

    out = tmp_path / "res.json"
    assert (
        main(
            [
                "evaluate",
                "--model",
                "daflow",
                "--random-init",
                "--data",
                "synthetic:default?n=2&size=64x64",
                "--steps",
                "0,3",
                "--iters",
                "2",
                "--no-progress",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "| dataset | metric | 0 | 3 | average | mean-flow |" in text
    import json

    record = json.loads(out.read_text())
    r = record["results"][0]
    assert set(r["per_step"]) == {"0", "3"} and r["pairs"] == 4
    assert r["average"]["epe"] == pytest.approx((r["per_step"]["0"]["epe"] + r["per_step"]["3"]["epe"]) / 2)
