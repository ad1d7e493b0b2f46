"""The one-step restorer: the DiT call, its image residual, the fidelity head, their training and bundling."""

import json

import numpy as np
import pytest
import torch

from daflow.data.degrade import degrade_clip, sample_params
from daflow.models.backbone import DiffusionBackbone
from daflow.models.fidelity import FidelityConfig, FidelityHead, load_fidelity, save_fidelity
from daflow.restoration import RestoreSettings, restore_clip
from daflow.restoration.consistency import psnr
from daflow.restoration.diffusion import one_step_images, one_step_x0


@pytest.fixture(scope="module")
def backbone():
    return DiffusionBackbone.from_preset("tiny", seed=0).eval()


def test_one_step_is_one_euler_step_from_the_lq_latent(backbone):
    """ẑ₀ = z_LQ − σ*·v(z_LQ, σ*): with the output projection zeroed (v = bias only = 0) the input comes back."""
    frames = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (1, 3, 3, 32, 32))).float()
    lq = backbone.encode_lq(frames)
    text, pooled = backbone.prompt.batch(1, device="cpu", dtype=torch.float32)
    z0 = one_step_x0(backbone.transformer, lq, text, pooled, sigma=0.5, num_frames=3)
    assert z0.shape == lq.shape and not torch.allclose(z0, lq)
    with torch.no_grad():
        v = backbone.transformer(lq, lq, text, pooled, torch.tensor([500.0]), num_frames=3)
    assert torch.allclose(z0, lq - 0.5 * v, atol=1e-5)
    # the image residual: ẑ₀ = z_LQ gives the input back exactly, whatever the VAE loses
    same = one_step_images(backbone, frames, sigma=0.5, z0=lq)
    assert torch.allclose(same, frames.flatten(0, 1), atol=1e-3)


def test_restore_clip_one_step_is_deterministic_and_keeps_anchors(backbone):
    frames = np.random.default_rng(1).integers(0, 256, (3, 32, 48, 3), dtype=np.uint8)
    a = restore_clip(backbone, frames, sampler="one-step", sigma=0.5, seed=0)
    b = restore_clip(backbone, frames, sampler="one-step", sigma=0.5, seed=123)
    assert torch.equal(a, b)  # no noise in the one-step call
    anchors = torch.randn(1, 16, 4, 6)
    c = restore_clip(backbone, frames, sampler="one-step", sigma=0.5, anchors=anchors)
    assert torch.equal(c[0], anchors[0])
    with pytest.raises(ValueError, match="sampler must be one of"):
        restore_clip(backbone, frames, sampler="ddim")


def test_auto_sampler_follows_what_the_restorer_was_trained_for(backbone):
    assert RestoreSettings().resolved(backbone).sampler == "full"  # a DiT never fine-tuned for one step
    backbone.one_step_sigma = 0.4
    try:
        resolved = RestoreSettings().resolved(backbone)
        assert (resolved.sampler, resolved.sigma) == ("one-step", 0.4)
        assert RestoreSettings(sampler="full").resolved(backbone).sampler == "full"
        assert RestoreSettings(sigma=0.7).resolved(backbone).sigma == 0.7
    finally:
        backbone.one_step_sigma = None
    with pytest.raises(ValueError, match="--sigma must lie in"):
        RestoreSettings(sigma=1.5)


def test_fidelity_head_starts_as_the_identity_and_round_trips(tmp_path):
    head = FidelityHead(FidelityConfig(channels=8, blocks=2))
    lq = torch.rand(2, 3, 16, 24) * 255
    prior = torch.rand(2, 3, 16, 24) * 255
    assert torch.equal(head(lq, prior), lq)  # zero-initialised output convolution
    torch.nn.init.normal_(head.conv_out.weight, std=0.01)
    out = head(lq, prior)
    assert not torch.equal(out, lq)
    loaded = load_fidelity(save_fidelity(head, tmp_path / "h"))
    assert torch.equal(loaded(lq, prior), out)
    blind = FidelityHead(FidelityConfig(channels=8, blocks=2, use_prior=False))
    blind.load_state_dict(head.state_dict())
    assert torch.equal(blind(lq, prior), blind(lq, lq + 50))  # the control never sees the diffusion output
    with pytest.raises(ValueError, match="even"):
        head(lq[..., :15, :], prior[..., :15, :])
    (tmp_path / "h" / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a fidelity-head config"):
        load_fidelity(tmp_path / "h")


def test_fidelity_head_learns_to_denoise_a_static_texture():
    """A few hundred steps of the head's L1 objective on noisy copies of one texture lower the error: the head
    trains (and its zero start is no fixed point)."""
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    clean = (128 + 60 * torch.sin(xx / 3) * torch.cos(yy / 4)).expand(8, 3, 32, 32)
    head = FidelityHead(FidelityConfig(channels=16, blocks=2))
    opt = torch.optim.Adam(head.parameters(), lr=2e-3)
    for _ in range(150):
        noisy = clean + 20 * torch.randn(clean.shape, generator=g)
        loss = ((head(noisy, noisy) - clean) / 255).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    noisy = clean + 20 * torch.randn(clean.shape, generator=g)
    with torch.no_grad():
        out = head(noisy, noisy)
    as_u8 = lambda t: t.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()  # noqa: E731
    assert psnr(as_u8(out), as_u8(clean)) > psnr(as_u8(noisy), as_u8(clean)) + 2.0


def test_mixed_clips_alternate_their_sources():
    from daflow.train.data import MixedClips

    mixed = MixedClips([["a0", "a1", "a2"], ["b0", "b1", "b2"]])
    assert [mixed[i] for i in range(4)] == ["a0", "b0", "a1", "b1"]
    with pytest.raises(ValueError, match="at least one"):
        MixedClips([])


def test_h264_preset_is_codec_damage_alone():
    from daflow.data.degrade.config import get_preset

    cfg = get_preset("h264")
    assert cfg.scale == 1.0 and not cfg.usm and cfg.codecs == ("libx264",)
    rng = np.random.default_rng(2)
    base = np.clip(128 + 50 * np.sin(np.arange(64) / 3.0)[None, :, None] + rng.normal(0, 5, (64, 64, 3)), 0, 255)
    hq = np.stack([np.roll(base, k, axis=1) for k in range(3)]).astype(np.uint8)
    p = sample_params("h264", 3, (64, 64), 0)
    assert all(f.s1_blur is None and f.s1_size == (64, 64) for f in p.frames)
    lq = degrade_clip(hq, p)
    assert lq.shape == hq.shape and 20.0 < psnr(lq, hq) < 60.0


def test_h264_low_preset_is_h264_at_lower_rates():
    from daflow.data.degrade.config import get_preset

    low, base = get_preset("h264-low"), get_preset("h264")
    assert low.bitrate[1] < base.bitrate[1] and low.bitrate[0] < base.bitrate[0]
    assert (low.stage1, low.stage2, low.codecs, low.scale) == (base.stage1, base.stage2, base.codecs, base.scale)
    rates = [sample_params("h264-low", 3, (64, 64), s).frames[0].final_codec.bitrate for s in range(20)]
    assert all(low.bitrate[0] <= r <= low.bitrate[1] for r in rates) and len(set(rates)) > 10


def test_recipe_mixtures_must_name_its_mirrors():
    from daflow.recipe.presets import RecipeConfig

    with pytest.raises(ValueError, match="one_step_mix must name LQ mirrors"):
        RecipeConfig(extra_degrades=("h264",), one_step_mix=("realbasicvsr", "mild"))
    assert RecipeConfig(extra_degrades=("h264",), one_step_mix=("h264",)).one_step_mix == ("h264",)


def test_restore_smoke_recipe_bundles_the_one_step_restorer(tmp_path):
    from daflow.cli import main
    from daflow.models.bundled import RESTORE_JSON, RESTORER, load_restorer

    run, weights = tmp_path / "run", tmp_path / "weights"
    args = ["train", "recipe", "restore-smoke", "-o", str(run), "--no-progress", "--bundle-into", str(weights)]
    assert main(args) == 0
    assert (run / "data" / "train" / "lq_h264").is_dir()
    assert not (run / "raft").exists()  # the restorer's recipe stops after its own stages
    # one_step_mix: the one-step DiT on the realbasicvsr mirror alone, the head on both
    one_step_data = json.loads((run / "one_step" / "train_one_step.json").read_text())["data"]
    assert "lq_h264" not in one_step_data and one_step_data.endswith("/lq")
    assert json.loads((weights / RESTORER / RESTORE_JSON).read_text())["sampler"] == "one-step"
    backbone = load_restorer(root=weights)
    assert backbone.one_step_sigma == json.loads((run / "one_step" / "train_one_step.json").read_text())["sigma"]
    assert isinstance(backbone.fidelity, FidelityHead)
    # the gate stage: fitted on the realbasicvsr and h264 mirrors, bundled beside the head
    assert json.loads((run / "gate" / "done.json").read_text())["codec_only"] == 4 and backbone.gate is not None
    # the head trained on the LQ frames as restore's default prefilter gives them (fidelity_prefilter)
    assert sorted(p.name for p in (run / "fidelity").glob("prepared_*.pt")) == [
        "prepared_lq_h264_prefiltered_r2_h32.pt",
        "prepared_lq_prefiltered_r2_h32.pt",
    ]
    record = json.loads((weights / RESTORER / "PROVENANCE.json").read_text())
    assert {"lift", "one_step", "fidelity", "gate"} <= set(record["stages"])
    assert record["recipe"]["config"]["vae_preset"] == "small"
    frames = np.random.default_rng(3).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    assert restore_clip(backbone, frames, sampler="one-step", sigma=0.5).shape == (3, 16, 4, 4)
