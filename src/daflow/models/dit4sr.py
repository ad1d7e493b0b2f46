"""DiT4SR (Duan et al. 2025): SD3.5-medium's MM-DiT with a low-quality (LQ) token stream, lifted to video.

Paper §3.2 (DiT4SR), §4.2 (lifting) and App. A; facts in ``docs/models.md``. Module and
parameter names equal the published ``dit4sr_q/transformer`` so that its safetensors file loads by name; the only
entries not built here are the ``attn2`` text projections the published file carries (``attn2.add_*_proj``,
``attn2.to_add_out``, ``attn2.norm_added_*``), which the published code creates but never uses.

Per block (x: noisy-latent tokens, c: LQ tokens, e: text tokens, all ``[B·F, T, C]``):

1. ``norm1`` modulates ``[x, c]`` together (one AdaLN); ``norm1_context`` modulates e.
2. ``attn``: x → ``to_q/k/v``; c → ``to_*_control(to_*(c))``; e → ``add_*_proj``; RMS qk-norm; one attention over
   ``[x, c, e]`` of all frames (:mod:`daflow.models.lifting`); x → ``to_out``, c → ``to_out_control(out + c_in)``.
   **Published quirk 1** (``lq_keys_from_hq``): the LQ keys are ``norm_k`` applied again to the already
   normalised HQ keys; ``to_k_control`` is computed and discarded.
3. Dual blocks (0–12): ``attn2``, the same without text.
4. FFN: after ``GELU(net.0)``, the LQ hidden ``[B·F, N, 4C]`` is laid out on the ``h × w`` token grid, passed
   through the depthwise 3×3 ``ff.control_conv`` and added to the HQ hidden, scaled by ``ff_control_scale``
   (**published quirk 2**: 1.2 at inference); ``net.2`` projects both. The grid is passed explicitly, so
   non-square inputs work (the published code assumes square grids).
5. After the last block only x is kept: ``norm_out``, ``proj_out``, unpatchify.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention
from diffusers.models.embeddings import CombinedTimestepTextProjEmbeddings, PatchEmbed
from diffusers.models.normalization import AdaLayerNormContinuous, AdaLayerNormZero, SD35AdaLayerNormZeroX

from daflow.files import read_json
from daflow.models.lifting import lifted_attention
from daflow.models.taps import TapRecorder
from daflow.models.weights import check_state_dict, read_diffusers_model, save_diffusers_model

log = logging.getLogger(__name__)

DIT4SR_PUBLISHED = (
    "the published transformer is dit4sr_q/transformer/diffusion_pytorch_model.safetensors "
    "(with its config.json) in the Hugging Face repository acceptee/DiT4SR"
)
#: entries of the published file that the published code never uses (the text projections of ``attn2``)
UNUSED_PUBLISHED = (
    "attn2.add_q_proj.",
    "attn2.add_k_proj.",
    "attn2.add_v_proj.",
    "attn2.to_add_out.",
    "attn2.norm_added_q.",
    "attn2.norm_added_k.",
)


@dataclass(frozen=True)
class DiT4SRConfig:
    """The keys of the published ``config.json`` plus the two published quirks (defaults reproduce them)."""

    sample_size: int = 128
    patch_size: int = 2
    in_channels: int = 16
    out_channels: int = 16
    num_layers: int = 24
    attention_head_dim: int = 64
    num_attention_heads: int = 24
    joint_attention_dim: int = 4096
    caption_projection_dim: int = 1536
    pooled_projection_dim: int = 2048
    pos_embed_max_size: int = 384
    dual_attention_layers: tuple[int, ...] = tuple(range(13))
    qk_norm: str | None = "rms_norm"
    lq_keys_from_hq: bool = True
    ff_control_scale: float = 1.2

    def __post_init__(self):
        object.__setattr__(self, "dual_attention_layers", tuple(int(i) for i in self.dual_attention_layers))
        inner = self.num_attention_heads * self.attention_head_dim
        if self.caption_projection_dim != inner:
            raise ValueError(
                f"caption_projection_dim ({self.caption_projection_dim}) must equal heads x head_dim ({inner})"
            )
        if any(not 0 <= i < self.num_layers - 1 for i in self.dual_attention_layers):
            raise ValueError(
                f"dual_attention_layers must lie in 0..{self.num_layers - 2}, got {self.dual_attention_layers}"
            )

    @property
    def inner_dim(self) -> int:
        return self.num_attention_heads * self.attention_head_dim

    @classmethod
    def from_json(cls, path_or_dict) -> DiT4SRConfig:
        """From the published ``config.json`` (``_class_name`` and other private keys are ignored)."""
        data = path_or_dict
        if isinstance(path_or_dict, (str, os.PathLike)):
            data = read_json(path_or_dict, what="DiT4SR config.json")
        from daflow.configs import config_from_dict

        return config_from_dict(cls, data, what="DiT4SR config")

    def to_dict(self) -> dict:
        from daflow.configs import config_to_dict

        return config_to_dict(self)


DIT4SR_PRESETS: dict[str, DiT4SRConfig] = {
    "paper": DiT4SRConfig(),
    "tiny": DiT4SRConfig(
        sample_size=32,
        num_layers=4,
        attention_head_dim=8,
        num_attention_heads=2,
        joint_attention_dim=32,
        caption_projection_dim=16,
        pooled_projection_dim=16,
        pos_embed_max_size=96,
        dual_attention_layers=(0, 1),
    ),  # up to 1536 px a side
}


@dataclass
class ForwardContext:
    """What every block needs besides its tensors: frames per clip, token grid, and the optional tap recorder."""

    num_frames: int
    grid: tuple[int, int]
    taps: TapRecorder | None = None


def _control_attention(
    dim: int, heads: int, head_dim: int, *, text: bool, context_pre_only: bool, qk_norm
) -> Attention:
    """A diffusers ``Attention`` plus DiT4SR's control projections (``to_{q,k,v}_control``: zero-initialised;
    ``to_out_control``: a copy of ``to_out.0``, as at DiT4SR's construction)."""
    kwargs = dict(added_kv_proj_dim=dim, context_pre_only=context_pre_only) if text else {}
    attn = Attention(
        query_dim=dim, dim_head=head_dim, heads=heads, out_dim=dim, bias=True, qk_norm=qk_norm, eps=1e-6, **kwargs
    )
    for name in ("to_q_control", "to_k_control", "to_v_control"):
        lin = nn.Linear(dim, dim)
        nn.init.zeros_(lin.weight), nn.init.zeros_(lin.bias)
        setattr(attn, name, lin)
    attn.to_out_control = nn.Linear(dim, dim)
    attn.to_out_control.load_state_dict(attn.to_out[0].state_dict())
    return attn


class FeedForwardControl(FeedForward):
    """diffusers' ``FeedForward`` (GELU-tanh) plus the zero-initialised depthwise ``control_conv``."""

    def __init__(self, dim: int):
        super().__init__(dim=dim, dim_out=dim, activation_fn="gelu-approximate")
        inner = self.net[2].in_features
        self.control_conv = nn.Conv2d(inner, inner, 3, padding=1, groups=inner)
        nn.init.zeros_(self.control_conv.weight), nn.init.zeros_(self.control_conv.bias)

    def forward_control(self, hidden: torch.Tensor, grid: tuple[int, int], scale: float) -> torch.Tensor:
        """``hidden`` ``[B·F, 2N, C]`` = [HQ; LQ] → ``[B·F, 2N, C]``."""
        hidden = self.net[1](self.net[0](hidden))
        x, c = hidden.chunk(2, dim=1)
        bf, n, ch = c.shape
        h, w = grid
        conv = self.control_conv(c.transpose(1, 2).reshape(bf, ch, h, w)).reshape(bf, ch, n).transpose(1, 2)
        return self.net[2](torch.cat([x + scale * conv, c], dim=1))


class DiT4SRBlock(nn.Module):
    """One MM-DiT block with the LQ stream (module docstring, steps 1–4)."""

    def __init__(self, config: DiT4SRConfig, index: int):
        super().__init__()
        dim, heads, hd = config.inner_dim, config.num_attention_heads, config.attention_head_dim
        self.index, self.config = index, config
        self.context_pre_only = index == config.num_layers - 1
        self.use_dual_attention = index in config.dual_attention_layers
        self.norm1 = SD35AdaLayerNormZeroX(dim) if self.use_dual_attention else AdaLayerNormZero(dim)
        self.norm1_context = (
            AdaLayerNormContinuous(dim, dim, elementwise_affine=False, eps=1e-6, bias=True, norm_type="layer_norm")
            if self.context_pre_only
            else AdaLayerNormZero(dim)
        )
        self.attn = _control_attention(
            dim, heads, hd, text=True, context_pre_only=self.context_pre_only, qk_norm=config.qk_norm
        )
        self.attn2 = (
            _control_attention(dim, heads, hd, text=False, context_pre_only=False, qk_norm=config.qk_norm)
            if self.use_dual_attention
            else None
        )
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ff = FeedForwardControl(dim)
        if not self.context_pre_only:
            self.norm2_context = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
            self.ff_context = FeedForward(dim=dim, dim_out=dim, activation_fn="gelu-approximate")
        else:
            self.norm2_context = self.ff_context = None

    def _attention(
        self, attn: Attention, name: str, hidden: torch.Tensor, text: torch.Tensor | None, ctx: ForwardContext
    ):
        x, c = hidden.chunk(2, dim=1)
        bf, heads = x.shape[0], attn.heads

        def heads_of(t):
            return t.view(bf, -1, heads, t.shape[-1] // heads).transpose(1, 2)

        q, k, v = heads_of(attn.to_q(x)), heads_of(attn.to_k(x)), heads_of(attn.to_v(x))
        qc = heads_of(attn.to_q_control(attn.to_q(c)))
        vc = heads_of(attn.to_v_control(attn.to_v(c)))
        if attn.norm_q is not None:
            q, qc = attn.norm_q(q), attn.norm_q(qc)
        if self.config.lq_keys_from_hq:  # published quirk 1
            k = attn.norm_k(k) if attn.norm_k is not None else k
            kc = attn.norm_k(k) if attn.norm_k is not None else k
        else:
            kc = heads_of(attn.to_k_control(attn.to_k(c)))
            if attn.norm_k is not None:
                k, kc = attn.norm_k(k), attn.norm_k(kc)
        if ctx.taps is not None:
            ctx.taps.record_qk(self.index, name, q, k, ctx.num_frames, ctx.grid)
        streams = [(q, k, v), (qc, kc, vc)]
        if text is not None:
            eq, ek, ev = (
                heads_of(attn.add_q_proj(text)),
                heads_of(attn.add_k_proj(text)),
                heads_of(attn.add_v_proj(text)),
            )
            if attn.norm_added_q is not None:
                eq = attn.norm_added_q(eq)
            if attn.norm_added_k is not None:
                ek = attn.norm_added_k(ek)
            streams.append((eq, ek, ev))
        outs = lifted_attention(streams, ctx.num_frames)
        x_out = attn.to_out[1](attn.to_out[0](outs[0]))
        c_out = attn.to_out_control(outs[1] + c)
        e_out = None
        if text is not None and not attn.context_pre_only:
            e_out = attn.to_add_out(outs[2])
        return torch.cat([x_out, c_out], dim=1), e_out

    def forward(self, hidden: torch.Tensor, text: torch.Tensor, temb: torch.Tensor, ctx: ForwardContext):
        """``hidden`` ``[B·F, 2N, C]`` ([HQ; LQ]), ``text`` ``[B·F, L, C]``, ``temb`` ``[B·F, C]``."""
        if self.use_dual_attention:
            normed, gate_msa, shift_mlp, scale_mlp, gate_mlp, normed2, gate_msa2 = self.norm1(hidden, emb=temb)
        else:
            normed, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.norm1(hidden, emb=temb)
        if ctx.taps is not None:
            ctx.taps.record_adanorm(self.index, normed[:, : normed.shape[1] // 2], ctx.num_frames, ctx.grid)
        if self.context_pre_only:
            normed_text = self.norm1_context(text, temb)
        else:
            normed_text, c_gate_msa, c_shift_mlp, c_scale_mlp, c_gate_mlp = self.norm1_context(text, emb=temb)
        attn_out, text_out = self._attention(self.attn, "attn", normed, normed_text, ctx)
        hidden = hidden + gate_msa.unsqueeze(1) * attn_out
        if self.use_dual_attention:
            attn_out2, _ = self._attention(self.attn2, "attn2", normed2, None, ctx)
            hidden = hidden + gate_msa2.unsqueeze(1) * attn_out2
        normed = self.norm2(hidden) * (1 + scale_mlp[:, None]) + shift_mlp[:, None]
        hidden = hidden + gate_mlp.unsqueeze(1) * self.ff.forward_control(
            normed, ctx.grid, self.config.ff_control_scale
        )
        if self.context_pre_only:
            return hidden, None
        text = text + c_gate_msa.unsqueeze(1) * text_out
        normed_text = self.norm2_context(text) * (1 + c_scale_mlp[:, None]) + c_shift_mlp[:, None]
        return hidden, text + c_gate_mlp.unsqueeze(1) * self.ff_context(normed_text)


class DiT4SRTransformer(nn.Module):
    """DiT4SR's transformer, lifted: ``forward(..., num_frames=F)`` attends over all F frames of each clip.

    Constructible from the published ``config.json`` keys: ``DiT4SRTransformer(**config)``, plus
    ``lq_keys_from_hq`` and ``ff_control_scale`` (the published quirks, reproduced by default).
    """

    def __init__(self, config: DiT4SRConfig | None = None, **config_keys):
        super().__init__()
        if config is not None and config_keys:
            raise ValueError("give either a DiT4SRConfig or config keys, not both")
        self.config = config = config if config is not None else DiT4SRConfig(**config_keys)
        dim = config.inner_dim
        self.pos_embed = PatchEmbed(
            height=config.sample_size,
            width=config.sample_size,
            patch_size=config.patch_size,
            in_channels=config.in_channels,
            embed_dim=dim,
            pos_embed_max_size=config.pos_embed_max_size,
        )
        self.time_text_embed = CombinedTimestepTextProjEmbeddings(
            embedding_dim=dim, pooled_projection_dim=config.pooled_projection_dim
        )
        self.context_embedder = nn.Linear(config.joint_attention_dim, config.caption_projection_dim)
        self.transformer_blocks = nn.ModuleList(DiT4SRBlock(config, i) for i in range(config.num_layers))
        self.norm_out = AdaLayerNormContinuous(dim, dim, elementwise_affine=False, eps=1e-6)
        self.proj_out = nn.Linear(dim, config.patch_size**2 * config.out_channels)
        #: recompute each block in the backward pass instead of storing its activations (training only)
        self.gradient_checkpointing = False

    @classmethod
    def from_config(cls, config: DiT4SRConfig | str) -> DiT4SRTransformer:
        if isinstance(config, str) and config not in DIT4SR_PRESETS:
            raise ValueError(f"unknown DiT4SR preset {config!r}; choose one of {sorted(DIT4SR_PRESETS)}")
        return cls(DIT4SR_PRESETS[config] if isinstance(config, str) else config)

    def forward(
        self,
        hidden_states: torch.Tensor,
        lq_latents: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        pooled_projections: torch.Tensor,
        timestep: torch.Tensor | float,
        num_frames: int = 1,
        taps: TapRecorder | None = None,
    ) -> torch.Tensor:
        """Velocity (diffusers sign, ε − z₀) ``[B·F, C, h, w]`` for noisy latents and LQ latents ``[B·F, C, h, w]``.

        ``encoder_hidden_states`` ``[B or B·F, L, joint_attention_dim]``, ``pooled_projections``
        ``[B or B·F, pooled_dim]`` and ``timestep`` (scalar, ``[B]`` or ``[B·F]``, = σ·1000) are repeated per frame
        when given per clip. Latent sides must be multiples of the patch size.
        """
        cfg = self.config
        bf, _, hh, ww = hidden_states.shape
        if lq_latents.shape != hidden_states.shape:
            raise ValueError(
                f"lq_latents {tuple(lq_latents.shape)} must match hidden_states {tuple(hidden_states.shape)}"
            )
        if num_frames < 1 or bf % num_frames:
            raise ValueError(f"batch {bf} must be a positive multiple of num_frames={num_frames}")
        p = cfg.patch_size
        if hh % p or ww % p:
            raise ValueError(f"latent sides must be multiples of the patch size {p}, got {hh}x{ww}")
        grid = (hh // p, ww // p)
        if max(grid) > cfg.pos_embed_max_size:
            raise ValueError(f"token grid {grid} exceeds pos_embed_max_size {cfg.pos_embed_max_size}")
        b = bf // num_frames
        timestep = torch.as_tensor(timestep, device=hidden_states.device, dtype=hidden_states.dtype)
        timestep = timestep.expand(b) if timestep.ndim == 0 else timestep
        encoder_hidden_states, pooled_projections, timestep = (
            _per_frame(t, b, num_frames, name)
            for t, name in (
                (encoder_hidden_states, "encoder_hidden_states"),
                (pooled_projections, "pooled_projections"),
                (timestep, "timestep"),
            )
        )
        n = grid[0] * grid[1]
        hidden = torch.cat([self.pos_embed(hidden_states), self.pos_embed(lq_latents)], dim=1)
        temb = self.time_text_embed(timestep, pooled_projections)
        text = self.context_embedder(encoder_hidden_states)
        ctx = ForwardContext(num_frames=num_frames, grid=grid, taps=taps)
        for block in self.transformer_blocks:
            if self.gradient_checkpointing and torch.is_grad_enabled():
                hidden, text = torch.utils.checkpoint.checkpoint(block, hidden, text, temb, ctx, use_reentrant=False)
            else:
                hidden, text = block(hidden, text, temb, ctx)
        x = self.proj_out(self.norm_out(hidden[:, :n], temb))
        x = x.reshape(bf, grid[0], grid[1], p, p, cfg.out_channels)
        return torch.einsum("nhwpqc->nchpwq", x).reshape(bf, cfg.out_channels, grid[0] * p, grid[1] * p)


def save_dit4sr(model: DiT4SRTransformer, folder: str | os.PathLike) -> Path:
    """Save in the published layout (``config.json`` + ``diffusion_pytorch_model.safetensors``), loadable by
    :func:`load_dit4sr` and by ``--dit4sr``."""
    return save_diffusers_model(folder, model.state_dict(), model.config.to_dict(), class_name="SD3Transformer2DModel")


def _per_frame(t: torch.Tensor, b: int, f: int, name: str) -> torch.Tensor:
    if t.shape[0] == b * f:
        return t
    if t.shape[0] == b:
        return t.repeat_interleave(f, dim=0)
    raise ValueError(f"{name} has batch {t.shape[0]}; expected {b} (per clip) or {b * f} (per frame)")


# ------------------------------------------------------------------------------------------------ loading


def load_dit4sr(
    path: str | os.PathLike,
    *,
    config: DiT4SRConfig | None = None,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    **overrides,
) -> DiT4SRTransformer:
    """Load the published transformer: a ``diffusion_pytorch_model.safetensors`` file (its ``config.json`` read
    from the same folder unless ``config`` is given) or a diffusers-style folder holding both. Mixed fp16/fp32
    tensors are cast to ``dtype``. ``overrides`` set config fields (e.g. ``ff_control_scale=1.0``)."""
    cfg_path, sd, files = read_diffusers_model(path, subfolder="transformer", what="DiT4SR", published=DIT4SR_PUBLISHED)
    if config is None:
        if cfg_path is None:
            raise FileNotFoundError(
                f"{files[0].parent / 'config.json'} not found: pass config= or put the published "
                "config.json beside the weights"
            )
        config = DiT4SRConfig.from_json(cfg_path)
    if overrides:
        config = DiT4SRConfig(**{**config.to_dict(), **overrides})
    with torch.device("meta"):
        model = DiT4SRTransformer(config)
    expected = model.state_dict()
    unused = [k for k in sd if k not in expected and any(u in k for u in UNUSED_PUBLISHED)]
    sd = {k: v for k, v in sd.items() if k not in unused}
    check_state_dict(expected, sd, prefix=f"{files[0]} does not fit DiT4SR {config}", source="file")
    sd = {k: v.to(dtype) for k, v in sd.items()}
    model.load_state_dict(sd, strict=True, assign=True)
    if unused:
        log.info("DiT4SR: ignored %d unused attn2 text-projection entries of the published file", len(unused))
    return model.to(device)
