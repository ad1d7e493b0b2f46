"""RAFT with official names, correlation order, convex upsampling, warm start, padder, hybrid = RAFT, loss."""

import pytest
import torch

from daflow.models.corr import AllPairsCorr, LeanCorr, WindowedCorr, build_corr
from daflow.models.precision import set_compute_dtype
from daflow.models.raft import RAFT, InputPadder, convex_upsample
from daflow.models.raft_weights import hybrid_state_dict_from_raft, load_raft
from daflow.train.losses import sequence_loss

# shapes of raft-things.pth (docs/models.md)
OFFICIAL_SHAPES = {
    "fnet.conv1.weight": (64, 3, 7, 7),
    "fnet.conv2.weight": (256, 128, 1, 1),
    "fnet.layer2.0.downsample.0.weight": (96, 64, 1, 1),
    "fnet.layer3.0.downsample.0.weight": (128, 96, 1, 1),
    "cnet.conv2.weight": (256, 128, 1, 1),
    "cnet.layer2.0.norm3.running_mean": (96,),
    "cnet.layer2.0.downsample.1.running_var": (96,),
    "update_block.encoder.convc1.weight": (256, 324, 1, 1),
    "update_block.encoder.convc2.weight": (192, 256, 3, 3),
    "update_block.encoder.convf1.weight": (128, 2, 7, 7),
    "update_block.encoder.convf2.weight": (64, 128, 3, 3),
    "update_block.encoder.conv.weight": (126, 256, 3, 3),
    "update_block.gru.convz1.weight": (128, 384, 1, 5),
    "update_block.gru.convq2.weight": (128, 384, 5, 1),
    "update_block.flow_head.conv1.weight": (256, 128, 3, 3),
    "update_block.flow_head.conv2.weight": (2, 256, 3, 3),
    "update_block.mask.0.weight": (256, 128, 3, 3),
    "update_block.mask.2.weight": (576, 256, 1, 1),
}


def official_state_dict(seed=0):
    """A state dict in the layout of raft-things.pth: 'module.' prefix, norm3 and downsample.1 both present,
    random weights and randomised BatchNorm statistics."""
    torch.manual_seed(seed)
    m = RAFT()
    sd = {}
    for k, v in m.state_dict().items():
        if v.dtype.is_floating_point:
            v = (
                torch.rand_like(v) + 0.5
                if ("running_var" in k or k.endswith("norm1.weight"))
                else torch.randn_like(v) * 0.05
            )
        sd["module." + k] = v.clone()
    for k in list(sd):  # the aliases hold equal tensors
        if ".downsample.1." in k:
            sd[k.replace(".downsample.1.", ".norm3.")] = sd[k].clone()
    return sd


def test_official_layout_keys_shapes_and_counts():
    sd = RAFT().state_dict()
    assert len(sd) == 179
    assert sum(p.numel() for p in RAFT().parameters()) == 5_257_536
    for k, shape in OFFICIAL_SHAPES.items():
        assert tuple(sd[k].shape) == shape, k
    assert not any(k.startswith("fnet") and "norm" in k for k in sd)  # instance norm without affine
    assert sum(p.numel() for p in RAFT(small=True).parameters()) == 990_162  # = torchvision raft_small


def test_load_official_layout_and_aliases():
    sd = official_state_dict()
    m = load_raft(sd)
    got = m.state_dict()
    for k, v in sd.items():
        torch.testing.assert_close(got[k[len("module.") :]], v, rtol=0, atol=0)
    without_aliases = {k: v for k, v in sd.items() if ".norm3." not in k}
    assert len(without_aliases) == 169
    load_raft(without_aliases)


def test_load_errors_are_clear(tmp_path):
    sd = official_state_dict()
    bad = dict(sd)
    bad["module.update_block.encoder.convc1.weight"] = torch.zeros(256, 196, 1, 1)
    with pytest.raises(ValueError, match=r"convc1.weight: checkpoint \(256, 196, 1, 1\) vs model \(256, 324, 1, 1\)"):
        load_raft(bad)
    del bad["module.fnet.conv1.weight"]
    with pytest.raises(ValueError, match="missing 1 keys"):
        load_raft(bad)
    with pytest.raises(FileNotFoundError, match="raft-things.pth"):
        load_raft(tmp_path / "raft-things.pth")
    torch.save(sd, tmp_path / "raft-things.pth")
    load_raft(tmp_path / "raft-things.pth")
    with pytest.raises(ValueError, match="RAFT-small"):
        load_raft(tmp_path / "raft-things.pth", small=True)


def test_correlation_window_order_x_offset_first():
    torch.manual_seed(0)
    f = torch.nn.functional.normalize(torch.randn(1, 32, 16, 20), dim=1)
    dx, dy = 2, -1
    f2 = torch.roll(f, shifts=(dy, dx), dims=(2, 3))  # content moves by (dx, dy)
    coords = torch.stack(torch.meshgrid(torch.arange(20.0), torch.arange(16.0), indexing="xy"))[None]
    for cls in (AllPairsCorr, WindowedCorr, LeanCorr):
        corr = cls(f, f2, num_levels=1, radius=4)(coords)
        assert corr.shape == (1, 81, 16, 20)
        best = corr[0, :, 5:-5, 5:-5].argmax(0)
        assert (best == (dx + 4) * 9 + (dy + 4)).all()  # channel = i*9 + j, i indexes the x-offset


@pytest.mark.parametrize("hw", [(8, 8), (13, 19), (24, 33)])
def test_windowed_equals_all_pairs(hw):
    torch.manual_seed(1)
    f1, f2 = torch.randn(2, 24, *hw), torch.randn(2, 24, *hw)
    coords = torch.rand(2, 2, *hw) * torch.tensor([hw[1], hw[0]]).view(1, 2, 1, 1) * 1.2 - 1
    ref = AllPairsCorr(f1, f2)(coords)
    torch.testing.assert_close(WindowedCorr(f1, f2)(coords), ref, atol=2e-5, rtol=1e-5)
    for direct in (0, 1, 2, 4):  # levels computed on the fly: none, the finest, two, all; small chunks too
        lean = LeanCorr(f1, f2, direct=direct, chunk=37)(coords)
        torch.testing.assert_close(lean, ref, atol=2e-5, rtol=1e-5)
    sea = {"pyramid": "features", "radius": 3}
    torch.testing.assert_close(
        LeanCorr(f1, f2, **sea)(coords), AllPairsCorr(f1, f2, **sea)(coords), atol=2e-5, rtol=1e-5
    )
    with pytest.raises(ValueError, match="corr mode"):
        build_corr(f1, f2, mode="fast")


def test_convex_upsampling():
    flow = torch.randn(1, 2, 5, 6)
    mask = torch.zeros(1, 9 * 64, 5, 6)
    mask.view(1, 9, 64, 5, 6)[:, 4] = 50.0  # all weight on the centre neighbour -> nearest upsampling
    up = convex_upsample(flow, mask)
    torch.testing.assert_close(up, 8 * flow.repeat_interleave(8, 2).repeat_interleave(8, 3), atol=1e-5, rtol=0)
    const = torch.full((1, 2, 5, 6), 1.5)
    uniform = convex_upsample(const, torch.zeros(1, 576, 5, 6))
    torch.testing.assert_close(uniform[:, :, 8:-8, 8:-8], torch.full_like(uniform[:, :, 8:-8, 8:-8], 12.0))


def test_forward_shapes_warm_start_and_input_checks():
    model = load_raft(official_state_dict()).eval()
    x1, x2 = torch.rand(1, 3, 64, 80) * 255, torch.rand(1, 3, 64, 80) * 255
    with torch.no_grad():
        out = model(x1, x2, iters=3)
    assert out.flow.shape == (1, 2, 64, 80) and out.flow_low.shape == (1, 2, 8, 10) and len(out.flow_predictions) == 3
    assert torch.equal(out.flow, out.flow_predictions[-1])
    with torch.no_grad():  # inference mode: only the last iteration upsampled, the same final flow to the bit
        last = model(x1, x2, iters=3, all_predictions=False)
    assert len(last.flow_predictions) == 1
    assert torch.equal(last.flow, out.flow) and torch.equal(last.flow_low, out.flow_low)
    init = torch.randn(1, 2, 8, 10)
    model.update_block.flow_head.conv2.weight.data.zero_()
    model.update_block.flow_head.conv2.bias.data.zero_()  # zero updates: the flow stays at its initialisation
    with torch.no_grad():
        warm = model(x1, x2, iters=2, flow_init=init)
    torch.testing.assert_close(warm.flow_low, init)
    with pytest.raises(ValueError, match="multiples of 8"):
        model(torch.zeros(1, 3, 66, 64), torch.zeros(1, 3, 66, 64))
    with pytest.raises(ValueError, match="at least 64x64"):
        model(torch.zeros(1, 3, 48, 64), torch.zeros(1, 3, 48, 64))
    with pytest.raises(ValueError, match="extra_features"):
        model(x1, x2, iters=1, extra_features=(torch.zeros(1, 4, 8, 10),) * 2)


@pytest.mark.parametrize("mode", ["sintel", "kitti"])
def test_padder_round_trip(mode):
    x = torch.randn(1, 3, 436, 1021)
    p = InputPadder(x.shape, mode=mode)
    (y,) = p.pad_images(x)
    assert y.shape[-2] % 8 == 0 and y.shape[-1] % 8 == 0
    assert torch.equal(p.unpad(y), x)
    if mode == "kitti":
        assert torch.equal(y[..., :436, :1021], x)


def test_hybrid_equals_raft_at_initialisation_and_learns():
    sd = official_state_dict(3)
    raft = load_raft(sd).eval()
    hybrid = load_raft(sd, extra_feature_dim=256, extra_context_dim=128).eval()
    w = hybrid.state_dict()["update_block.gru.convz1.weight"]
    assert w.shape == (128, 512, 1, 5) and torch.all(w[:, 256:384] == 0)
    x1, x2 = torch.rand(2, 3, 64, 80) * 255, torch.rand(2, 3, 64, 80) * 255
    zeros = torch.zeros(2, 256, 8, 10)
    ctx = torch.randn(2, 128, 8, 10)
    with torch.no_grad():
        a = raft(x1, x2, iters=4)
        b = hybrid(x1, x2, iters=4, extra_features=(zeros, zeros), extra_context=ctx)
        # float32: only the summation order differs (zero columns join the sums)
        torch.testing.assert_close(b.flow, a.flow, atol=1e-3, rtol=0)
        # float64: the plumbing and the zero-init surgery are exact
        a64 = raft.double()(x1.double(), x2.double(), iters=4)
        b64 = hybrid.double()(
            x1.double(),
            x2.double(),
            iters=4,
            extra_features=(zeros.double(), zeros.double()),
            extra_context=ctx.double(),
        )
        torch.testing.assert_close(b64.flow, a64.flow, atol=1e-9, rtol=0)
    raft.float()
    hybrid.float()
    # gradients reach the new, zero-initialised columns
    hybrid.train()
    hybrid.freeze_bn()
    out = hybrid(
        x1, x2, iters=2, extra_features=(torch.randn(2, 256, 8, 10), torch.randn(2, 256, 8, 10)), extra_context=ctx
    )
    sequence_loss(out.flow_predictions, torch.zeros_like(out.flow)).backward()
    g = hybrid.update_block.gru.convq2.weight.grad
    assert g[:, 256:384].abs().sum() > 0
    with pytest.raises(ValueError, match="extra_context must be"):
        hybrid(x1, x2, iters=1, extra_features=(zeros, zeros))
    assert set(hybrid_state_dict_from_raft({k[7:]: v for k, v in sd.items()}, 0)) == {k[7:] for k in sd}


def test_sequence_loss_hand_computed():
    gt = torch.zeros(1, 2, 1, 2)
    p1 = torch.tensor([[[[1.0, 0.0]], [[0.0, 0.0]]]])  # |err| sum 1
    p2 = torch.tensor([[[[0.0, 2.0]], [[0.0, 2.0]]]])  # |err| sum 4
    valid = torch.tensor([[[1.0, 1.0]]])
    # official: each term is a mean over all B*2*H*W = 4 entries, weights 0.8^(M-i-1)
    assert float(sequence_loss([p1, p2], gt, valid)) == pytest.approx(0.8 * 1 / 4 + 4 / 4)
    assert float(sequence_loss([p1, p2], gt, torch.tensor([[[1.0, 0.0]]]))) == pytest.approx(0.8 * 1 / 4 + 0)
    # "valid" normalisation divides by 2 * #valid pixels
    assert float(sequence_loss([p1, p2], gt, torch.tensor([[[1.0, 0.0]]]), normalize="valid")) == pytest.approx(
        0.8 * 1 / 2
    )
    big = torch.tensor([[[[500.0, 0.0]], [[0.0, 0.0]]]])
    assert float(sequence_loss([p1], big, valid)) == pytest.approx(0.0)  # |gt| >= 400 is not supervised
    with pytest.raises(ValueError, match="normalize"):
        sequence_loss([p1], gt, normalize="mean")


def test_mixed_precision_and_windowed_mode_agree():
    sd = official_state_dict(5)
    x1, x2 = torch.rand(1, 3, 64, 96) * 255, torch.rand(1, 3, 64, 96) * 255
    with torch.no_grad():
        ref = load_raft(sd, corr_mode="all-pairs").eval()(x1, x2, iters=3).flow
        win = load_raft(sd, corr_mode="windowed").eval()(x1, x2, iters=3).flow
        lean = load_raft(sd, corr_mode="lean").eval()(x1, x2, iters=3).flow
        amp = set_compute_dtype(load_raft(sd).eval(), torch.bfloat16)(x1, x2, iters=3).flow
    torch.testing.assert_close(win, ref, atol=1e-3, rtol=0)
    torch.testing.assert_close(lean, ref, atol=2e-4, rtol=0)  # the same sums in another order
    assert amp.dtype == torch.float32 and (amp - ref).abs().mean() < 0.05 * ref.abs().mean() + 0.05


def test_auto_correlation_picks_lean_past_the_all_pairs_limit(monkeypatch):
    import daflow.models.corr as corr

    f1, f2 = torch.randn(1, 16, 12, 16), torch.randn(1, 16, 12, 16)
    assert isinstance(build_corr(f1, f2), AllPairsCorr)
    monkeypatch.setattr(corr, "AUTO_ALL_PAIRS_MAX_ENTRIES", 100)
    lean = build_corr(f1, f2)
    assert isinstance(lean, LeanCorr) and lean.direct == 1
    # the stored levels' budget decides how many fine levels run on the fly: a 1080p pair stores levels 2-3
    assert corr.lean_direct_levels((136 * 240) ** 2, 4) == 2
    assert corr.lean_direct_levels((55 * 128) ** 2, 4) == 1
    assert corr.lean_direct_levels(10**12, 4, max_stored=0) == 4


def test_lean_tiles_and_their_fallback_equal_all_pairs():
    """Smooth window centres go through the tiled product, a tile straddling a 30 px jump through the per-pixel
    path, windows leaving the frame read zeros: all equal to the all-pairs lookup."""
    import daflow.models.corr as corr

    torch.manual_seed(3)
    h, w = 21, 35  # not multiples of the tile
    f1, f2 = torch.randn(2, 16, h, w), torch.randn(2, 16, h, w)
    ys, xs = torch.meshgrid(torch.arange(float(h)), torch.arange(float(w)), indexing="ij")
    flow = torch.stack([2.5 * torch.sin(ys / 5) + 1.3, 1.7 * torch.cos(xs / 7) - 0.6])
    flow[0, :, 20:] += 30.0  # a motion boundary: these tiles spread too far for one region
    coords = (torch.stack([xs, ys]) + flow)[None].repeat(2, 1, 1, 1)
    coords[1] -= 4.0  # the second clip looks partly outside the frame
    lean = LeanCorr(f1, f2, direct=2)
    p = coords.permute(0, 2, 3, 1).floor().long()
    tiles = p[:, :16, :32].reshape(2, 2, corr.TILE, 4, corr.TILE, 2)
    spread = (tiles.amax((2, 4)) - tiles.amin((2, 4))).amax(-1)
    assert (spread <= corr.TILE - 1 + corr.TILE_MARGIN).any() and (spread > corr.TILE - 1 + corr.TILE_MARGIN).any()
    torch.testing.assert_close(lean(coords), AllPairsCorr(f1, f2)(coords), atol=2e-5, rtol=1e-5)


def test_instance_norm_is_torchs_instance_normalisation():
    """The encoders' instance normalisation (group normalisation with one group a channel) equals torch's
    ``InstanceNorm2d`` (no affine parameters, no running statistics) to float rounding, and carries no state."""
    from daflow.models.raft import InstanceNorm

    x = torch.randn(2, 6, 17, 23) * 5 + 3
    norm = InstanceNorm(6)
    torch.testing.assert_close(norm(x), torch.nn.InstanceNorm2d(6)(x), rtol=0, atol=1e-5)
    assert norm(x).mean((2, 3)).abs().max() < 1e-5 and not norm.state_dict()
