"""SEA-RAFT: official key layout, loading, output shapes, protocol, mixture-of-Laplace, determinism, no network."""

import json
import math
import socket

import pytest
import torch
import torch.nn.functional as F

from daflow.models.corr import AllPairsCorr, WindowedCorr, halve
from daflow.models.sea_raft import (
    SEA_RAFT_PRESETS,
    SEARAFT,
    SEARAFTConfig,
    get_sea_raft_config,
    laplace_mixture_nll,
    load_sea_raft,
    uncertainty,
)

# docs/models.md: SEA-RAFT-M has 472 state-dict entries and 19,663,876 parameters
M_SHAPES = {
    "cnet.conv1.weight": (64, 6, 7, 7),
    "fnet.conv1.weight": (64, 3, 7, 7),
    "cnet.layer1.2.conv2.weight": (64, 64, 3, 3),
    "cnet.layer3.5.bn2.running_var": (256,),
    "cnet.layer2.0.bn3.weight": (128,),
    "cnet.layer2.0.downsample.0.weight": (128, 64, 1, 1),
    "cnet.layer2.0.downsample.1.running_mean": (128,),
    "cnet.final_conv.weight": (256, 256, 1, 1),
    "init_conv.weight": (256, 256, 3, 3),
    "flow_head.0.weight": (256, 128, 3, 3),
    "flow_head.2.weight": (6, 256, 3, 3),
    "upsample_weight.0.weight": (256, 128, 3, 3),
    "upsample_weight.2.weight": (576, 256, 1, 1),
    "update_block.encoder.convc1.weight": (256, 324, 1, 1),
    "update_block.encoder.conv.weight": (126, 256, 3, 3),
    "update_block.refine.0.dwconv.weight": (384, 1, 7, 7),
    "update_block.refine.1.norm.weight": (384,),
    "update_block.refine.0.pwconv1.weight": (512, 384),
    "update_block.refine.0.pwconv2.weight": (384, 512),
    "update_block.refine.1.gamma": (384,),
    "update_block.refine.1.final.weight": (128, 384, 1, 1),
}


def official_state_dict(config="sea-raft-m", seed=0):
    """Random weights in the layout of the official file (no prefix; bn3 and downsample.1 both present)."""
    torch.manual_seed(seed)
    sd = {}
    for k, v in SEARAFT(get_sea_raft_config(config)).state_dict().items():
        if v.dtype.is_floating_point:
            v = (
                torch.rand_like(v) + 0.5
                if k.endswith(("running_var", "bn1.weight", "bn2.weight"))
                else torch.randn_like(v) * 0.03
            )
        sd[k] = v.clone()
    for k in list(sd):
        if ".downsample.1." in k:
            sd[k] = sd[k.replace(".downsample.1.", ".bn3.")]
    return sd


def test_official_layout_counts_and_shapes():
    m = SEARAFT(get_sea_raft_config("sea-raft-m"))
    sd = m.state_dict()
    assert len(sd) == 472
    assert sum(p.numel() for p in m.parameters()) == 19_663_876
    for k, shape in M_SHAPES.items():
        assert tuple(sd[k].shape) == shape, k
    s = SEARAFT(get_sea_raft_config("sea-raft-s")).state_dict()  # resnet18: 2 blocks per stage
    assert "cnet.layer3.1.conv1.weight" in s and "cnet.layer3.2.conv1.weight" not in s
    assert get_sea_raft_config("sea-raft-l") == SEARAFTConfig(iters=12)  # L = the M weights at 12 iterations
    assert get_sea_raft_config("spring-m").scale == -1


def test_config_from_official_json(tmp_path):
    official = {
        "name": "spring-M",
        "dataset": "spring",
        "gpus": [0, 1],
        "use_var": True,
        "var_min": 0,
        "var_max": 10,
        "pretrain": "resnet34",
        "initial_dim": 64,
        "block_dims": [64, 128, 256],
        "radius": 4,
        "dim": 128,
        "num_blocks": 2,
        "iters": 4,
        "image_size": [540, 960],
        "scale": -1,
        "lr": 4e-4,
    }
    path = tmp_path / "spring-M.json"
    path.write_text(json.dumps(official))
    assert SEARAFTConfig.from_json(path) == SEA_RAFT_PRESETS["spring-m"]
    assert SEARAFTConfig.from_json(SEARAFTConfig().to_dict()) == SEARAFTConfig()
    with pytest.raises(ValueError, match="pretrain"):
        SEARAFTConfig(pretrain="resnet50")


def test_load_official_layouts_and_clear_errors(tmp_path):
    sd = official_state_dict()
    m = load_sea_raft(sd, "sea-raft-m")
    got = m.state_dict()
    for k, v in sd.items():
        assert torch.equal(got[k], v), k
    # ptlflow's wrapping, a DataParallel prefix, and a file missing the bn3 aliases all load
    torch.save({"state_dict": sd, "hyper_parameters": {}}, tmp_path / "ptlflow.ckpt")
    load_sea_raft(tmp_path / "ptlflow.ckpt")
    load_sea_raft({"module." + k: v for k, v in sd.items() if ".bn3." not in k})
    with pytest.raises(FileNotFoundError, match="Tartan-C-T-TSKH-spring540x960-M"):
        load_sea_raft(tmp_path / "missing.pth")
    with pytest.raises(ValueError, match=r"SEA-RAFT \(resnet18.*unexpected"):
        load_sea_raft(sd, "sea-raft-s")
    bad = dict(sd, **{"flow_head.2.weight": torch.zeros(4, 256, 3, 3)})
    with pytest.raises(ValueError, match=r"flow_head.2.weight: checkpoint \(4, 256, 3, 3\) vs model \(6, 256, 3, 3\)"):
        load_sea_raft(bad)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pth: cannot read"):
        load_sea_raft(tmp_path / "junk.pth")


def test_construction_never_touches_the_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access during construction")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    SEARAFT(get_sea_raft_config("sea-raft-m"))


def test_halved_feature_pyramid_equals_pooled_volume():
    torch.manual_seed(0)
    f = torch.randn(1, 8, 13, 19)
    torch.testing.assert_close(halve(f), F.avg_pool2d(f, 2), atol=1e-6, rtol=1e-6)  # odd sides: floor, like pooling
    f1, f2 = torch.randn(2, 16, 17, 23), torch.randn(2, 16, 17, 23)
    coords = torch.rand(2, 2, 17, 23) * 20
    vol = AllPairsCorr(f1, f2)(coords)
    torch.testing.assert_close(AllPairsCorr(f1, f2, pyramid="features")(coords), vol, atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(WindowedCorr(f1, f2, pyramid="features")(coords), vol, atol=2e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="pyramid"):
        AllPairsCorr(f1, f2, pyramid="bilinear")


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(3)
    return SEARAFT(get_sea_raft_config("tiny")).eval()


def test_forward_shapes_padding_and_determinism(tiny):
    torch.manual_seed(0)
    a, b = torch.rand(2, 3, 130, 150) * 255, torch.rand(2, 3, 130, 150) * 255  # not multiples of 8
    with torch.no_grad():
        out = tiny(a, b, iters=3)
        again = tiny(a, b, iters=3)
        single = tiny(a[:1], b[:1], iters=3)
    assert out.flow.shape == (2, 2, 130, 150) and out.info.shape == (2, 4, 130, 150)
    assert len(out.flow_predictions) == len(out.info_predictions) == 4  # iteration 0 + 3 updates
    assert torch.equal(out.flow, again.flow) and torch.equal(out.info, again.info)
    torch.testing.assert_close(single.flow, out.flow[:1], atol=1e-4, rtol=1e-4)
    assert tiny(a, b).flow_predictions.__len__() == tiny.config.iters + 1
    with pytest.raises(ValueError, match="at least 128x128"):
        tiny(a[..., :100, :], b[..., :100, :])
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        tiny(a, b[:, :2])


def test_windowed_mode_matches_all_pairs(tiny):
    torch.manual_seed(1)
    a, b = torch.rand(1, 3, 128, 160) * 255, torch.rand(1, 3, 128, 160) * 255
    windowed = SEARAFT(tiny.config, corr_mode="windowed").eval()
    windowed.load_state_dict(tiny.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(windowed(a, b).flow, tiny(a, b).flow, atol=1e-3, rtol=1e-3)


def test_half_resolution_protocol(tiny):
    torch.manual_seed(2)
    a, b = torch.rand(1, 3, 256, 320) * 255, torch.rand(1, 3, 256, 320) * 255
    flow, info = tiny.estimate(a, b, scale=-1)
    assert flow.shape == (1, 2, 256, 320) and info.shape == (1, 4, 256, 320)
    half = tiny(
        F.interpolate(a, scale_factor=0.5, mode="bilinear"), F.interpolate(b, scale_factor=0.5, mode="bilinear")
    )
    torch.testing.assert_close(flow, 2 * F.interpolate(half.flow, scale_factor=2.0, mode="bilinear"))
    flow_odd, _ = tiny.estimate(a[..., :255, :], b[..., :255, :], scale=-1)
    assert flow_odd.shape == (1, 2, 255, 320)
    full, _ = tiny.estimate(a, b)  # the preset's scale (0)
    assert torch.equal(full, tiny(a, b).flow)


def test_mixture_of_laplace_nll_and_uncertainty():
    flow = torch.zeros(1, 2, 1, 1)
    gt = torch.tensor([1.0, -2.0]).view(1, 2, 1, 1)
    # equal weights, log b = (log 3, 0) -> b = (3, 1)
    info = torch.tensor([0.0, 0.0, math.log(3.0), 0.7]).view(1, 4, 1, 1)  # the second raw log b clamps to 0
    nll = laplace_mixture_nll(flow, info, gt)
    for c, e in enumerate((1.0, 2.0)):
        density = 0.5 * math.exp(-e / 3) / 6 + 0.5 * math.exp(-e) / 2
        assert nll[0, c, 0, 0].item() == pytest.approx(-math.log(density), rel=1e-6)
    assert uncertainty(info)[0, 0, 0, 0].item() == pytest.approx(0.5 * math.log(3.0))
    clamped = torch.tensor([0.0, 0.0, 50.0, -50.0]).view(1, 4, 1, 1)  # var_max 10, var_min 0
    assert uncertainty(clamped).item() == pytest.approx(5.0)


def test_gradients_reach_every_trainable_parameter(tiny):
    m = SEARAFT(tiny.config).train()
    a, b = torch.rand(2, 3, 128, 128) * 255, torch.rand(2, 3, 128, 128) * 255
    out = m(a, b, iters=2)
    loss = sum(
        laplace_mixture_nll(f, i, torch.zeros_like(f)).mean()
        for f, i in zip(out.flow_predictions, out.info_predictions)
    )
    loss.backward()
    silent = [n for n, p in m.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not silent, silent
