"""The diffusion side around DiT4SR: SD3.5 VAE, null prompt, rectified-flow sampler, and the feature backbone."""

import json

import pytest
import torch
from safetensors.torch import save_file

from daflow.models.backbone import DiffusionBackbone
from daflow.models.prompt import PromptEmbeds, load_null_prompt, zero_prompt
from daflow.models.sampler import denoise, euler_step, make_schedule, training_sigmas
from daflow.models.taps import TapSpec
from daflow.models.vae import VAE_PRESETS, VAEConfig, build_vae, decode, encode, load_vae

# the published stable-diffusion-3.5-medium/vae/config.json (docs/models.md)
PUBLISHED_VAE_CONFIG = {
    "_class_name": "AutoencoderKL",
    "_diffusers_version": "0.31.0.dev0",
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "force_upcast": True,
    "in_channels": 3,
    "latent_channels": 16,
    "latents_mean": None,
    "latents_std": None,
    "layers_per_block": 2,
    "mid_block_add_attention": True,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 1024,
    "scaling_factor": 1.5305,
    "shift_factor": 0.0609,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "use_post_quant_conv": False,
    "use_quant_conv": False,
}

# the published 10-step model timesteps of SD3.5's scheduler with shift 3 (research note §5)
PUBLISHED_TIMESTEPS = [1000.0, 960.1293, 913.3490, 857.6923, 790.3683, 707.2785, 602.1506, 464.8760, 278.0488, 8.9286]


def test_paper_vae_matches_the_published_layout():
    cfg = VAEConfig.from_json(PUBLISHED_VAE_CONFIG)
    assert cfg == VAE_PRESETS["paper"]
    with torch.device("meta"):
        vae = build_vae(cfg)
    sd = vae.state_dict()
    assert len(sd) == 244
    assert sum(v.numel() for v in sd.values()) == 83_819_683
    assert tuple(sd["encoder.conv_in.weight"].shape) == (128, 3, 3, 3)
    assert tuple(sd["encoder.conv_out.weight"].shape) == (32, 512, 3, 3)  # mean and log-variance, 16 each
    assert tuple(sd["decoder.conv_in.weight"].shape) == (512, 16, 3, 3)
    assert not any(k.startswith(("quant_conv", "post_quant_conv")) for k in sd)


def test_vae_config_rejects_other_autoencoders():
    with pytest.raises(ValueError, match="use_quant_conv"):
        VAEConfig.from_json({**PUBLISHED_VAE_CONFIG, "use_quant_conv": True})
    with pytest.raises(ValueError, match="norm_num_groups"):
        VAEConfig(block_out_channels=(8, 12), norm_num_groups=8)


def test_tiny_vae_encode_decode_shapes_and_scaling():
    torch.manual_seed(0)
    vae = build_vae("tiny").eval()
    images = torch.rand(2, 3, 32, 48) * 255
    z = encode(vae, images)
    assert z.shape == (2, 16, 4, 6)
    raw = vae.encode(images / 127.5 - 1).latent_dist.mean
    torch.testing.assert_close(z, (raw - 0.0609) * 1.5305)
    assert torch.equal(encode(vae, images), z)  # posterior mean: deterministic
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    assert torch.equal(encode(vae, images, sample=True, generator=g1), encode(vae, images, sample=True, generator=g2))
    out = decode(vae, z)
    assert out.shape == images.shape and out.min() >= 0 and out.max() <= 255
    with pytest.raises(ValueError, match="multiples of 8"):
        encode(vae, torch.rand(1, 3, 30, 48))
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        encode(vae, torch.rand(3, 32, 48))


@pytest.mark.parametrize("layout", ["file", "vae_folder", "pipeline_folder"])
def test_load_vae_from_the_published_layouts(tmp_path, layout):
    torch.manual_seed(0)
    vae = build_vae("tiny")
    cfg = {**PUBLISHED_VAE_CONFIG, **VAE_PRESETS["tiny"].to_dict()}
    folder = tmp_path / "sd35" / "vae" if layout == "pipeline_folder" else tmp_path / "vae"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(cfg))
    # published VAE tensors are fp16 (loaded and cast to the requested dtype)
    save_file(
        {k: v.half().contiguous() for k, v in vae.state_dict().items()},
        str(folder / "diffusion_pytorch_model.safetensors"),
    )
    target = {
        "file": folder / "diffusion_pytorch_model.safetensors",
        "vae_folder": folder,
        "pipeline_folder": tmp_path / "sd35",
    }[layout]
    loaded = load_vae(target, config=VAE_PRESETS["tiny"] if layout == "file" else None)
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    for k, v in vae.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v.half().float()), k


def test_load_vae_names_missing_and_unexpected_keys(tmp_path):
    vae = build_vae("tiny")
    sd = {k: v.contiguous() for k, v in vae.state_dict().items() if k != "decoder.conv_out.bias"}
    sd["quant_conv.weight"] = torch.zeros(32, 32, 1, 1)
    path = tmp_path / "vae.safetensors"
    save_file(sd, str(path))
    with pytest.raises(ValueError, match="decoder.conv_out.bias") as err:
        load_vae(path, config=VAE_PRESETS["tiny"])
    assert "quant_conv.weight" in str(err.value) and "vae.safetensors" in str(err.value)
    with pytest.raises(FileNotFoundError, match="stable-diffusion-3.5-medium"):
        load_vae(tmp_path / "missing.safetensors")


def test_schedule_gives_the_published_timesteps():
    s = make_schedule(10, shift=3.0)
    torch.testing.assert_close(s.timesteps, torch.tensor(PUBLISHED_TIMESTEPS), atol=1e-4, rtol=0)
    torch.testing.assert_close(s.sigmas[:-1] * 1000, s.timesteps)
    assert s.sigmas[0] == 1 and s.sigmas[-1] == 0 and len(s) == 10
    sig = training_sigmas(shift=3.0)
    assert sig.shape == (1000,) and sig[0] == 1 and torch.all(sig[1:] < sig[:-1])
    with pytest.raises(ValueError, match="steps"):
        make_schedule(0)


def test_euler_step_follows_the_diffusers_convention():
    from diffusers import FlowMatchEulerDiscreteScheduler

    sched = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0)
    sched.set_timesteps(10)
    z, v = torch.randn(1, 16, 4, 4), torch.randn(1, 16, 4, 4)
    for i in (0, 4, 9):
        sched._step_index = i
        ref = sched.step(v, sched.timesteps[i], z).prev_sample
        torch.testing.assert_close(euler_step(z, v, float(sched.sigmas[i]), float(sched.sigmas[i + 1])), ref)
    # v = ε − z₀ (σ = 1 − t): from pure noise with the exact velocity, one step to σ = 0 lands on z₀
    z0, eps = torch.randn(4), torch.randn(4)
    torch.testing.assert_close(euler_step(eps, eps - z0, 1.0, 0.0), z0)


def test_null_prompt_loading(tmp_path):
    torch.save(torch.randn(1, 154, 32), tmp_path / "NULL_prompt_embeds.pt")  # published: with a batch axis
    torch.save(torch.randn(16), tmp_path / "NULL_pooled_prompt_embeds.pt")
    p = load_null_prompt(tmp_path)
    assert p.embeds.shape == (154, 32) and p.pooled.shape == (16,)
    e, pooled = p.batch(3)
    assert e.shape == (3, 154, 32) and pooled.shape == (3, 16)
    p2 = load_null_prompt(tmp_path / "NULL_prompt_embeds.pt")
    assert torch.equal(p2.embeds, p.embeds)
    with pytest.raises(ValueError, match="joint_attention_dim=4096"):
        p.check(4096, 2048)
    with pytest.raises(FileNotFoundError, match="acceptee/DiT4SR"):
        load_null_prompt(tmp_path / "elsewhere")
    torch.save({"a": 1, "b": 2}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="bad.pt"):
        load_null_prompt(tmp_path / "bad.pt", tmp_path / "NULL_pooled_prompt_embeds.pt")
    z = zero_prompt(32, 16)
    assert z.embeds.shape == (154, 32) and not z.embeds.any()
    with pytest.raises(ValueError, match=r"\[L, C\]"):
        PromptEmbeds(torch.zeros(3), torch.zeros(2))


@pytest.fixture(scope="module")
def backbone():
    bb = DiffusionBackbone.from_preset("tiny", seed=0)
    # the control (LQ) layers are zero-initialised as in DiT4SR; give them weights so that the LQ frames matter
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        for name, p in bb.transformer.named_parameters():
            if "control" in name and not p.any():
                p.normal_(0, 0.05)
    return bb


def test_backbone_steps_taps_and_stopping(backbone):
    frames = torch.rand(1, 3, 3, 32, 48) * 255
    steps = list(backbone.features(frames, taps=TapSpec(blocks=(1, 3)), steps=10))
    assert [s.index for s in steps] == list(range(10))
    torch.testing.assert_close(
        torch.tensor([s.timestep for s in steps]), torch.tensor(PUBLISHED_TIMESTEPS), atol=1e-4, rtol=0
    )
    for s in steps:
        assert set(s.taps) == {1, 3}
        assert s.taps[3]["q"].shape == (1, 3, 2, 3, 16) and s.taps[3]["k"].shape == (1, 3, 2, 3, 16)
        assert s.latents.shape == (3, 16, 4, 6)
    early = list(backbone.features(frames, taps=TapSpec(blocks=(1, 3)), steps=10, stop_after=2))
    assert len(early) == 3
    for a, b in zip(early, steps[:3]):  # seeded: stopping early gives the same first steps
        assert torch.equal(a.taps[3]["q"], b.taps[3]["q"]) and torch.equal(a.latents, b.latents)
    with pytest.raises(ValueError, match="stop_after"):
        list(backbone.features(frames, stop_after=10))


def test_backbone_taps_do_not_change_the_run_and_the_seed_fixes_it(backbone):
    frames = torch.rand(2, 3, 3, 32, 32) * 255
    a = list(backbone.features(frames, taps=TapSpec(blocks=(0, 1, 2, 3), features=("q", "k", "adanorm")), steps=3))
    lq = backbone.encode_lq(frames)
    # clip i starts from the noise of seed + i
    noise = torch.cat([torch.randn((3, *lq.shape[1:]), generator=torch.Generator().manual_seed(i)) for i in (0, 1)])
    b = list(denoise(backbone.transformer, lq, backbone.prompt, num_frames=3, steps=3, taps=None, noise=noise))
    for x, y in zip(a, b):
        assert torch.equal(x.latents, y.latents) and y.taps == {}
    c = list(backbone.features(frames, steps=3, seed=1))
    assert not torch.equal(c[-1].latents, a[-1].latents)
    # a clip's run does not depend on the other clips of the batch
    alone = list(backbone.features(frames[1:], steps=3, seed=[1]))
    torch.testing.assert_close(alone[-1].latents, a[-1].latents[3:], atol=1e-5, rtol=0)
    # the LQ frames condition the run
    d = list(backbone.features(frames.flip(-1), taps=TapSpec(blocks=(3,)), steps=1))
    assert not torch.allclose(d[0].velocity, a[0].velocity)


def test_backbone_rejects_unpadded_frames(backbone):
    with pytest.raises(ValueError, match="multiple=16"):
        list(backbone.features(torch.rand(1, 2, 3, 40, 48)))
    with pytest.raises(ValueError, match=r"\[B, F, 3, H, W\]"):
        backbone.encode_lq(torch.rand(2, 3, 32, 32))


def test_backbone_from_pretrained_files(tmp_path, backbone):
    from daflow.models.dit4sr import DIT4SR_PRESETS

    tr = tmp_path / "dit4sr_q" / "transformer"
    tr.mkdir(parents=True)
    (tr / "config.json").write_text(json.dumps(DIT4SR_PRESETS["tiny"].to_dict()))
    save_file(
        {k: v.contiguous() for k, v in backbone.transformer.state_dict().items()},
        str(tr / "diffusion_pytorch_model.safetensors"),
    )
    vae = tmp_path / "vae"
    vae.mkdir()
    (vae / "config.json").write_text(json.dumps({**PUBLISHED_VAE_CONFIG, **VAE_PRESETS["tiny"].to_dict()}))
    save_file(
        {k: v.contiguous() for k, v in backbone.vae.state_dict().items()},
        str(vae / "diffusion_pytorch_model.safetensors"),
    )
    loaded = DiffusionBackbone.from_pretrained(tmp_path / "dit4sr_q", vae)
    frames = torch.rand(1, 2, 3, 32, 32) * 255
    a = next(backbone.features(frames, taps=TapSpec(blocks=(3,))))
    b = next(loaded.features(frames, taps=TapSpec(blocks=(3,))))
    assert torch.equal(a.taps[3]["q"], b.taps[3]["q"])
