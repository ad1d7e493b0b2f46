"""DiT4SR: published key layout (paper preset on the meta device), loading, lifting, quirks and taps."""

import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

import daflow.models.dit4sr as dit4sr_module
from daflow.models.dit4sr import DIT4SR_PRESETS, DiT4SRConfig, DiT4SRTransformer, load_dit4sr
from daflow.models.lifting import fold, unfold
from daflow.models.taps import TapRecorder, TapSpec

# the published dit4sr_q/transformer/config.json (docs/models.md)
PUBLISHED_CONFIG = {
    "_class_name": "SD3Transformer2DModel",
    "_diffusers_version": "0.31.0",
    "_name_or_path": "./experiments/sd3_5_sr_zeroconv_ffplus/checkpoint-80000",
    "sample_size": 128,
    "patch_size": 2,
    "in_channels": 16,
    "out_channels": 16,
    "num_layers": 24,
    "attention_head_dim": 64,
    "num_attention_heads": 24,
    "joint_attention_dim": 4096,
    "caption_projection_dim": 1536,
    "pooled_projection_dim": 2048,
    "pos_embed_max_size": 384,
    "dual_attention_layers": list(range(13)),
    "qk_norm": "rms_norm",
}


def _unused_attn2_entries(model: DiT4SRTransformer, dtype=torch.float16) -> dict[str, torch.Tensor]:
    """The attn2 text projections the published file carries (built, never used, by the published code)."""
    d, hd = model.config.inner_dim, model.config.attention_head_dim
    out = {}
    for i in model.config.dual_attention_layers:
        for name in ("add_q_proj", "add_k_proj", "add_v_proj", "to_add_out"):
            out[f"transformer_blocks.{i}.attn2.{name}.weight"] = torch.randn(d, d, dtype=dtype)
            out[f"transformer_blocks.{i}.attn2.{name}.bias"] = torch.randn(d, dtype=dtype)
        for name in ("norm_added_q", "norm_added_k"):
            out[f"transformer_blocks.{i}.attn2.{name}.weight"] = torch.ones(hd, dtype=dtype)
    return out


def test_paper_preset_matches_the_published_layout():
    with torch.device("meta"):
        m = DiT4SRTransformer(**{k: v for k, v in PUBLISHED_CONFIG.items() if not k.startswith("_")})
    sd = m.state_dict()
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    # 1383 tensors / 2,943,306,560 parameters in the published file, of which 130 / 122,764,928 are the unused
    # attn2 text projections (13 dual blocks x (4 linear layers x 2 + 2 norms))
    assert len(sd) == 1383 - 130
    assert sum(v.numel() for v in sd.values()) == 2_943_306_560 - 13 * (4 * (1536 * 1536 + 1536) + 2 * 64)
    assert shapes["pos_embed.proj.weight"] == (1536, 16, 2, 2)
    assert shapes["pos_embed.pos_embed"] == (1, 147456, 1536)
    assert shapes["context_embedder.weight"] == (1536, 4096)
    assert shapes["time_text_embed.text_embedder.linear_1.weight"] == (1536, 2048)
    assert shapes["proj_out.weight"] == (64, 1536)
    assert shapes["transformer_blocks.12.norm1.linear.weight"] == (13824, 1536)  # SD35AdaLayerNormZeroX
    assert shapes["transformer_blocks.13.norm1.linear.weight"] == (9216, 1536)
    assert shapes["transformer_blocks.23.norm1_context.linear.weight"] == (3072, 1536)
    assert shapes["transformer_blocks.5.ff.control_conv.weight"] == (6144, 1, 3, 3)
    assert shapes["transformer_blocks.5.ff.net.0.proj.weight"] == (6144, 1536)
    for name in ("to_q_control", "to_k_control", "to_v_control", "to_out_control"):
        assert shapes[f"transformer_blocks.0.attn2.{name}.weight"] == (1536, 1536)
        assert shapes[f"transformer_blocks.23.attn.{name}.weight"] == (1536, 1536)
    assert shapes["transformer_blocks.3.attn.norm_added_k.weight"] == (64,)
    assert (
        "transformer_blocks.23.attn.to_add_out.weight" not in sd
        and "transformer_blocks.23.ff_context.net.2.weight" not in sd
    )
    assert "transformer_blocks.13.attn2.to_q.weight" not in sd and "transformer_blocks.12.attn2.to_q.weight" in sd
    assert DIT4SR_PRESETS["paper"] == m.config


def test_config_from_published_json(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(PUBLISHED_CONFIG))
    cfg = DiT4SRConfig.from_json(tmp_path / "config.json")
    assert cfg == DIT4SR_PRESETS["paper"] and cfg.lq_keys_from_hq and cfg.ff_control_scale == 1.2
    with pytest.raises(ValueError, match="unknown key"):
        DiT4SRConfig.from_json({**PUBLISHED_CONFIG, "use_pos_embed": True})
    with pytest.raises(ValueError, match="caption_projection_dim"):
        DiT4SRConfig(caption_projection_dim=1024)


def _randomised(config="tiny", seed=0, **overrides):
    """A tiny model whose zero-initialised control weights are made non-zero (as after training)."""
    torch.manual_seed(seed)
    cfg = DiT4SRConfig(**{**DIT4SR_PRESETS[config].to_dict(), **overrides})
    m = DiT4SRTransformer(cfg).eval()
    with torch.no_grad():
        for name, p in m.named_parameters():
            if "control" in name or "norm1" in name or "norm_out" in name:
                p.copy_(torch.randn_like(p) * 0.2)
    return m


def _inputs(b=2, f=3, h=8, w=12, seed=1):
    g = torch.Generator().manual_seed(seed)
    cfg = DIT4SR_PRESETS["tiny"]
    return (
        torch.randn(b * f, 16, h, w, generator=g),
        torch.randn(b * f, 16, h, w, generator=g),
        torch.randn(b, 5, cfg.joint_attention_dim, generator=g),
        torch.randn(b, cfg.pooled_projection_dim, generator=g),
    )


def test_load_published_layout_mixed_dtypes_and_errors(tmp_path):
    src = _randomised()
    sd = {k: (v.float() if "control" in k else v.half()) for k, v in src.state_dict().items()}  # the published mix
    sd.update(_unused_attn2_entries(src))
    folder = tmp_path / "dit4sr_q" / "transformer"
    folder.mkdir(parents=True)
    save_file(sd, str(folder / "diffusion_pytorch_model.safetensors"))
    (folder / "config.json").write_text(
        json.dumps({"_class_name": "SD3Transformer2DModel", **DIT4SR_PRESETS["tiny"].to_dict()})
    )
    for path in (folder, folder / "diffusion_pytorch_model.safetensors", tmp_path / "dit4sr_q"):
        m = load_dit4sr(path)
        for k, v in m.state_dict().items():
            assert v.dtype == torch.float32 and torch.equal(v, sd[k].float()), k
    assert load_dit4sr(folder, ff_control_scale=1.0).config.ff_control_scale == 1.0
    del sd["transformer_blocks.1.ff.control_conv.bias"]
    sd["transformer_blocks.0.attn.to_q.weight"] = torch.zeros(3, 3)
    save_file(sd, str(tmp_path / "bad.safetensors"))
    with pytest.raises(
        ValueError, match=r"missing 1 keys.*control_conv.bias.*to_q.weight: file \(3, 3\) vs model \(16, 16\)"
    ):
        load_dit4sr(tmp_path / "bad.safetensors", config=DIT4SR_PRESETS["tiny"])
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_dit4sr(tmp_path / "bad.safetensors")
    with pytest.raises(FileNotFoundError, match="acceptee/DiT4SR"):
        load_dit4sr(tmp_path / "nothing.safetensors")


def _per_frame_attention(streams, num_frames):
    """Independent reference of the published (unlifted) processor: per image, [x, c, e] in one SDPA."""
    q, k, v = (torch.cat([s[i] for s in streams], dim=2) for i in range(3))
    out = F.scaled_dot_product_attention(q, k, v)
    out = out.transpose(1, 2).reshape(out.shape[0], -1, out.shape[1] * out.shape[3])
    return list(torch.split(out, [s[0].shape[2] for s in streams], dim=1))


def test_single_frame_lifted_equals_unlifted_exactly(monkeypatch):
    m = _randomised()
    x, c, e, pooled = _inputs(b=4, f=1)
    with torch.no_grad():
        lifted = m(x, c, e, pooled, 700.0, num_frames=1)
        monkeypatch.setattr(dit4sr_module, "lifted_attention", _per_frame_attention)
        unlifted = m(x, c, e, pooled, 700.0)
    assert torch.equal(lifted, unlifted)


def test_frames_interact_and_permute():
    m = _randomised()
    x, c, e, pooled = _inputs(b=2, f=3)
    with torch.no_grad():
        out = m(x, c, e, pooled, 400.0, num_frames=3)
        x2 = x.clone()
        x2[2] += 1.0  # last frame of clip 0
        out2 = m(x2, c, e, pooled, 400.0, num_frames=3)
        assert (out2[0] - out[0]).abs().max() > 1e-4  # frame 0 sees frame 2
        assert torch.equal(out2[3:], out[3:])  # clip 1 is untouched
        perm = torch.tensor([2, 0, 1, 5, 3, 4])
        permuted = m(x[perm], c[perm], e, pooled, 400.0, num_frames=3)
        torch.testing.assert_close(permuted, out[perm], atol=1e-5, rtol=1e-5)
        alone = m(x, c, e.repeat_interleave(3, 0), pooled.repeat_interleave(3, 0), 400.0)  # frames independent
        assert (alone - out).abs().max() > 1e-4
    assert out.shape == x.shape  # non-square 4x6 token grid


def test_fold_unfold_round_trip():
    t = torch.arange(2 * 3 * 2 * 4 * 5, dtype=torch.float32).view(6, 2, 4, 5)  # [B·F, heads, T, d]
    folded = fold(t, 3)
    assert folded.shape == (2, 2, 12, 5)
    assert torch.equal(folded[1, 0, 4:8], t[4, 0])  # clip 1, frame 1, head 0
    merged = folded.transpose(1, 2).reshape(2, 12, 10)
    back = unfold(merged, 3)
    assert torch.equal(back, t.transpose(1, 2).reshape(6, 4, 10))


def test_published_quirks_are_flags():
    x, c, e, pooled = _inputs(b=1, f=2)
    with torch.no_grad():
        base = _randomised()(x, c, e, pooled, 300.0, num_frames=2)
        fixed = _randomised(lq_keys_from_hq=False)(x, c, e, pooled, 300.0, num_frames=2)
        scale1 = _randomised(ff_control_scale=1.0)(x, c, e, pooled, 300.0, num_frames=2)
    assert (base - fixed).abs().max() > 1e-4 and (base - scale1).abs().max() > 1e-4
    m = _randomised().train()  # with the quirk, to_k_control gets no gradient (published training behaviour)
    m(x, c, e, pooled, 300.0, num_frames=2).square().mean().backward()
    assert m.transformer_blocks[0].attn.to_k_control.weight.grad is None
    assert m.transformer_blocks[0].attn.to_q_control.weight.grad.abs().sum() > 0


def test_taps_hold_only_what_was_asked():
    m = _randomised()
    with torch.no_grad():
        m.transformer_blocks[1].attn.norm_k.weight.fill_(1.0)
    x, c, e, pooled = _inputs(b=2, f=3)
    rec = TapRecorder(TapSpec(blocks=(1, 3)))
    with torch.no_grad():
        m(x, c, e, pooled, 500.0, num_frames=3, taps=rec)
    taps = rec.pop()
    assert set(taps) == {1, 3} and set(taps[1]) == {"q", "k"}
    assert taps[3]["q"].shape == (2, 3, 4, 6, 16)  # [B, F, h, w, heads*d]
    assert rec.pop() == {}
    # the K tap is taken after the RMS qk-norm: with a unit norm weight every 8-channel head has unit RMS
    rms = taps[1]["k"].reshape(2, 3, 4, 6, 2, 8).pow(2).mean(-1).sqrt()
    torch.testing.assert_close(rms, torch.ones_like(rms), atol=1e-3, rtol=0)
    rec2 = TapRecorder(TapSpec(blocks=(0, 3), attention="attn2", features=("q", "adanorm")))
    with torch.no_grad():
        m(x, c, e, pooled, 500.0, num_frames=3, taps=rec2)
    taps2 = rec2.pop()
    assert set(taps2[0]) == {"q", "adanorm"} and set(taps2[3]) == {"adanorm"}  # block 3 has no attn2 in tiny
    with pytest.raises(ValueError, match="tap attention"):
        TapSpec(attention="cross")


def test_input_checks():
    m = DiT4SRTransformer.from_config("tiny")
    x, c, e, pooled = _inputs(b=1, f=3)
    with pytest.raises(ValueError, match="multiple of num_frames"):
        m(x, c, e, pooled, 1.0, num_frames=2)
    with pytest.raises(ValueError, match="must match"):
        m(x, c[:, :, :4], e, pooled, 1.0, num_frames=3)
    with pytest.raises(ValueError, match="multiples of the patch size"):
        m(x[..., :7, :], c[..., :7, :], e, pooled, 1.0, num_frames=3)
    with pytest.raises(ValueError, match="encoder_hidden_states has batch 2"):
        m(x, c, e.repeat(2, 1, 1), pooled, 1.0, num_frames=3)
