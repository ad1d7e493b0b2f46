"""DA-Flow (paper §4.4, Eq. 13–17): the lifted DiT4SR's Q/K features, DPT-upsampled, in a hybrid RAFT.

For a clip of F frames ``[B, F, 3, H, W]`` (LQ, RGB 0..255):

1. the frames are padded to multiples of 16 and the :class:`~daflow.models.backbone.DiffusionBackbone` (E_D, frozen)
   runs its denoising; every step yields the query and key of the tapped blocks (default {3, 13, 16, 17}) of every
   frame on the 1/16 grid;
2. per pair (k, k+1) and step (Eq. 14): ``F_q = DPT_Q({Q_k^l})``, ``F_k = DPT_K({K_{k+1}^l})``, ``F_c = DPT_ctx({Q_k^l})``,
   all at 1/8 (``c = 256``, ``c′ = 128``);
3. hybrid RAFT (Eq. 15–17): RAFT's feature encoder output of frame k (k+1) is concatenated with ``F_q`` (``F_k``)
   before the correlation pyramid; ``F_c`` is appended to RAFT's context; the GRU refines the flow.

Each denoising step gives a flow; :meth:`DAFlow.forward` returns those of the requested steps (all by default), and
``stop_after`` ends the denoising early (step 0 alone = one DiT call per chunk).

With ``refiner=True`` the flow network is the bundled default's DIS→RAFT refiner (:mod:`daflow.models.refine`) made
hybrid: RAFT-small with the convex upsampler, started from DIS, coarse to fine, DIS kept where much better, polished.
Each pair is then a 2-frame clip for the DiT, at every pyramid level (:meth:`DAFlow.pair_features`), and
:meth:`DAFlow.from_refiner` performs the surgery that makes the model equal the refiner before training.

The flow network (DPT heads + RAFT) is trained in stage 2 with the DiT frozen (:mod:`daflow.train.flow`; the refiner
form by :mod:`daflow.train.refine`). Saved as ``config.json`` + ``flownet.safetensors``; the DiT4SR transformer and
VAE in their published layouts beside them or elsewhere.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from daflow.models.backbone import DiffusionBackbone
from daflow.models.catalog import DAFLOW_ITERS
from daflow.models.dpt import BilinearHead, DPTConfig, DPTHead
from daflow.models.raft import RAFT, InputPadder
from daflow.models.raft_weights import hybrid_state_dict_from_raft
from daflow.models.refine import Fallback
from daflow.models.sampler import DEFAULT_SHIFT, DEFAULT_STEPS
from daflow.models.taps import DEFAULT_BLOCKS, TapSpec
from daflow.models.vae import TOKEN_STRIDE

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "flownet.safetensors"


@dataclass(frozen=True)
class DAFlowConfig:
    """The flow network's shape. ``backbone``: the DiT4SR/VAE preset the random-weight backbone is built at
    (pretrained backbones bring their own); ``blocks``/``attention``: the taps; ``head``: ``dpt`` (paper) or
    ``bilinear`` (App. C.3); ``feature_dim`` c and ``context_dim`` c′ (Eq. 14); ``dpt_out_channels``, ``dpt_scales``
    (App. A.0.2: (1, 1, 2, 2)) and ``dpt_pos_embed`` of the DPT heads; ``raft``: ``large`` (paper, raft-things) or
    ``small``; ``corr_scale``: RAFT's 1/sqrt(256) (``raft``, keeps RAFT exact at initialisation) or ``hybrid``;
    ``refiner``: the flow network is the DIS→RAFT refiner made hybrid (module docstring; needs ``raft="small"``)."""

    backbone: str = "paper"
    blocks: tuple[int, ...] = DEFAULT_BLOCKS
    attention: str = "attn"
    head: str = "dpt"
    feature_dim: int = 256
    context_dim: int = 128
    dpt_out_channels: tuple[int, ...] = (256, 512, 1024, 1024)
    dpt_scales: tuple[float, ...] = (1, 1, 2, 2)
    dpt_pos_embed: bool = True
    raft: str = "large"
    corr_scale: str = "raft"
    refiner: bool = False

    def __post_init__(self):
        for name in ("blocks", "dpt_out_channels"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        object.__setattr__(self, "dpt_scales", tuple(float(v) for v in self.dpt_scales))
        if self.head not in ("dpt", "bilinear"):
            raise ValueError(f"head must be 'dpt' or 'bilinear', got {self.head!r}")
        if self.raft not in ("large", "small"):
            raise ValueError(f"raft must be 'large' or 'small', got {self.raft!r}")
        if self.refiner and self.raft != "small":
            raise ValueError("refiner=True makes the DIS->RAFT refiner (RAFT-small) hybrid: it needs raft='small'")
        if len(self.blocks) != len(self.dpt_scales):
            raise ValueError(f"{len(self.blocks)} tapped blocks need as many DPT levels, got scales {self.dpt_scales}")
        TapSpec(blocks=self.blocks, attention=self.attention)  # validates the attention name

    def to_dict(self) -> dict:
        from daflow.configs import config_to_dict

        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> DAFlowConfig:
        from daflow.configs import config_from_dict

        return config_from_dict(cls, data, what="DA-Flow config")


_TINY = DAFlowConfig(
    backbone="tiny",
    blocks=(0, 1, 2, 3),
    feature_dim=32,
    context_dim=16,
    dpt_out_channels=(16, 32, 64, 64),
    raft="small",
)
DAFLOW_PRESETS: dict[str, DAFlowConfig] = {
    "paper": DAFlowConfig(),
    "tiny": _TINY,
    # the tiny heads on the restorer's DiT (6 blocks, 4 heads x 16) and the default's DIS->RAFT refiner: the blocks
    # ranked best by `daflow analyze` on that DiT (zero-shot, as §4.3 chooses {3, 13, 16, 17}); no position embedding
    # in the DPT heads, so that a zero key head gives zero features (:meth:`DAFlow.from_refiner`)
    "small": replace(_TINY, blocks=(0, 2, 3, 5), dpt_pos_embed=False, refiner=True),
}


@dataclass
class DAFlowOutput:
    """``flows[step]``: ``[B, F−1, 2, H, W]`` for every returned denoising step (input size, padding removed);
    ``predictions[step]``: the per-iteration flows ``[B·(F−1), 2, H_pad, W_pad]`` (padded; for the loss), when
    asked for; ``timesteps[step]``: the model timestep of that step."""

    flows: dict[int, torch.Tensor]
    timesteps: dict[int, float] = field(default_factory=dict)
    predictions: dict[int, list[torch.Tensor]] = field(default_factory=dict)

    def mean(self) -> torch.Tensor:
        """The mean of the returned steps' flows (a step ensemble)."""
        return torch.stack(list(self.flows.values())).mean(0)


class DAFlow(nn.Module):
    """Frozen diffusion backbone + DPT heads (``dpt_q``, ``dpt_k``, ``dpt_ctx``) + hybrid RAFT (``raft``)."""

    def __init__(
        self, config: DAFlowConfig | str = "paper", backbone: DiffusionBackbone | None = None, *, seed: int = 0
    ):
        super().__init__()
        if isinstance(config, str):
            if config not in DAFLOW_PRESETS:
                raise ValueError(f"unknown DA-Flow preset {config!r}; choose one of {sorted(DAFLOW_PRESETS)}")
            config = DAFLOW_PRESETS[config]
        self.config = config
        self.backbone = backbone if backbone is not None else DiffusionBackbone.from_preset(config.backbone, seed=seed)
        self.backbone.requires_grad_(False).eval()
        dit = self.backbone.transformer.config
        bad = [
            b
            for b in config.blocks
            if not 0 <= b < dit.num_layers or (config.attention == "attn2" and b not in dit.dual_attention_layers)
        ]
        if bad:
            raise ValueError(
                f"tapped blocks {bad} do not exist in this DiT4SR ({dit.num_layers} blocks, attn2 in "
                f"{list(dit.dual_attention_layers)})"
            )
        head = DPTHead if config.head == "dpt" else BilinearHead

        def make(c: int) -> nn.Module:
            return head(
                DPTConfig(
                    dim_in=dit.inner_dim,
                    features=c,
                    out_channels=config.dpt_out_channels,
                    scales=config.dpt_scales,
                    pos_embed=config.dpt_pos_embed,
                )
            )

        self.dpt_q, self.dpt_k, self.dpt_ctx = (
            make(config.feature_dim),
            make(config.feature_dim),
            make(config.context_dim),
        )
        self.raft = RAFT(
            small=config.raft == "small",
            extra_feature_dim=config.feature_dim,
            extra_context_dim=config.context_dim,
            corr_scale=config.corr_scale,
            convex=config.refiner,
        )

    def train(self, mode: bool = True) -> DAFlow:
        super().train(mode)
        self.backbone.eval()  # frozen in stage 2, whatever the flow network does
        return self

    @property
    def device(self) -> torch.device:
        return next(self.raft.parameters()).device

    def flownet_state_dict(self) -> dict[str, torch.Tensor]:
        """The trained part: DPT heads and RAFT (the backbone is saved in its own published layout)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("backbone.")}

    def init_raft(self, raft_state_dict: dict[str, torch.Tensor]) -> None:
        """Load RAFT weights (e.g. ``raft-things.pth``) into the hybrid RAFT, widening the GRU with zero columns for
        the diffusion context (:func:`~daflow.models.raft.hybrid_state_dict_from_raft`)."""
        from daflow.models.raft_weights import read_state_dict
        from daflow.models.weights import load_strict

        sd = read_state_dict(raft_state_dict)
        probe = "update_block.gru.convz1.weight" if self.config.raft == "large" else "update_block.gru.convz.weight"
        expected = self.raft.state_dict()
        if probe in sd and sd[probe].shape[1] != expected[probe].shape[1]:
            sd = hybrid_state_dict_from_raft(sd, self.config.context_dim)
        load_strict(self.raft, sd, what=f"DA-Flow's hybrid RAFT-{self.config.raft}")

    @classmethod
    def from_refiner(
        cls, config: DAFlowConfig | str, backbone: DiffusionBackbone, refiner_state_dict, *, seed: int = 0
    ) -> DAFlow:
        """The hybrid surgery on a trained DIS→RAFT refiner (``refiner_state_dict``: its ``raft.safetensors`` or
        state dict): RAFT's weights with zero GRU columns for the diffusion context
        (:func:`~daflow.models.raft_weights.hybrid_state_dict_from_raft`) and the key head's last convolution at
        zero, so that ``F_k = 0`` and the extra correlation ``F_q · F_k`` vanishes: before training the model's flow
        equals the refiner's bit for bit (the query head still learns: its gradient passes through ``F_k``'s). The
        heads' other weights are drawn from ``seed``."""
        with torch.random.fork_rng(devices=[]):  # the heads' initial weights from ``seed`` alone
            torch.manual_seed(seed)
            model = cls(config, backbone, seed=seed)
        if not model.config.refiner or model.config.dpt_pos_embed:
            raise ValueError("from_refiner needs a config with refiner=True and dpt_pos_embed=False (preset 'small')")
        model.init_raft(refiner_state_dict)
        last = model.dpt_k.scratch.output_conv1 if model.config.head == "dpt" else model.dpt_k.proj
        nn.init.zeros_(last.weight)
        if last.bias is not None:
            nn.init.zeros_(last.bias)
        return model

    def diffusion_features(self, taps: dict[int, dict[str, torch.Tensor]], image_size: tuple[int, int]):
        """Eq. 14 for one step's taps (``[B, F, h, w, C]`` per block): ``(F_q, F_k, F_c)``, each
        ``[B·(F−1), c or c′, H/8, W/8]`` for the pairs (k, k+1) in order."""
        q = [taps[b]["q"][:, :-1].flatten(0, 1) for b in self.config.blocks]  # frames k
        k = [taps[b]["k"][:, 1:].flatten(0, 1) for b in self.config.blocks]  # frames k+1
        dtype = next(self.dpt_q.parameters()).dtype
        q, k = [t.to(dtype) for t in q], [t.to(dtype) for t in k]
        return self.dpt_q(q, image_size), self.dpt_k(k, image_size), self.dpt_ctx(q, image_size)

    @property
    def default_iters(self) -> int | None:
        """Refinement iterations when none are asked for: the paper's 20 at inference (12 in its training); None with
        ``refiner=True``, which leaves them to :func:`~daflow.models.refine.refine_pyramid` (a pyramid level's own)."""
        return None if self.config.refiner else DAFLOW_ITERS

    def refine(self, frames: torch.Tensor, features, *, iters: int):
        """Hybrid RAFT (Eq. 15–17) on the pairs of padded ``frames`` ``[B, F, 3, H, W]`` with the diffusion
        ``features`` ``(F_q, F_k, F_c)`` of :meth:`diffusion_features`; returns RAFT's output for ``B·(F−1)`` pairs."""
        first, second = frames[:, :-1].flatten(0, 1), frames[:, 1:].flatten(0, 1)
        fq, fk, ctx = features
        return self.raft(first, second, iters=iters, extra_features=(fq, fk), extra_context=ctx)

    def pair_features(
        self,
        image1: torch.Tensor,
        image2: torch.Tensor,
        *,
        step: int = 0,
        num_steps: int = DEFAULT_STEPS,
        shift: float = DEFAULT_SHIFT,
        seed: int | Sequence[int] = 0,
    ) -> dict:
        """The hybrid RAFT's extra inputs (``extra_features``, ``extra_context``) for pairs of frames ``[B, 3, H, W]``
        (sides multiples of 8, as RAFT takes them): each pair a 2-frame clip, replicate-padded at the bottom and right
        to multiples of 16 for the DiT and denoised to ``step``; Eq. 14's features cropped back to the frames' 1/8
        grid."""
        b, _, h, w = image1.shape
        ph, pw = (-h) % TOKEN_STRIDE, (-w) % TOKEN_STRIDE
        pairs = torch.stack([image1, image2], 1).flatten(0, 1)
        clip = F.pad(pairs, (0, pw, 0, ph), mode="replicate") if ph or pw else pairs
        clip = clip.view(b, 2, 3, h + ph, w + pw)
        spec = TapSpec(blocks=self.config.blocks, attention=self.config.attention, features=("q", "k"))
        taps = None
        for s in self.backbone.features(clip, taps=spec, steps=num_steps, shift=shift, stop_after=step, seed=seed):
            taps = s.taps if s.index == step else taps
        features = self.diffusion_features(taps, (h + ph, w + pw))
        fq, fk, ctx = (f[..., : h // 8, : w // 8] for f in features)
        return {"extra_features": (fq, fk), "extra_context": ctx}

    def refine_pairs(
        self,
        image1: torch.Tensor,
        image2: torch.Tensor,
        *,
        iters: int | None = None,
        levels: int | None = None,
        polish_rounds: int | None = None,
        fallback: Fallback | None | str = "default",
        **denoise,
    ) -> torch.Tensor:
        """``refiner=True``: the flow ``[B, 2, H, W]`` of pairs of frames ``[B, 3, H, W]`` (0..255, any size), by
        :func:`~daflow.models.refine.refine_pyramid` with the diffusion features of :meth:`pair_features` (``denoise``:
        its ``step``, ``num_steps``, ``shift``, ``seed``) at every level; ``iters`` / ``levels`` / ``polish_rounds`` /
        ``fallback`` as the refiner's (its defaults when None / ``"default"``)."""
        from daflow.models.refine import DEFAULT_FALLBACK, DEFAULT_POLISH, refine_pyramid

        if not self.config.refiner:
            raise ValueError("refine_pairs needs a DA-Flow built with refiner=True")

        def extras(a: torch.Tensor, b: torch.Tensor) -> dict:
            return self.pair_features(a, b, **denoise)

        return refine_pyramid(
            self.raft,
            image1.to(self.device),
            image2.to(self.device),
            iters=iters,
            levels=levels,
            polish_rounds=DEFAULT_POLISH if polish_rounds is None else polish_rounds,
            fallback=DEFAULT_FALLBACK if fallback == "default" else fallback,
            extras=extras,
        )

    def forward(
        self,
        frames: torch.Tensor,
        *,
        steps: Sequence[int] | None = None,
        num_steps: int = DEFAULT_STEPS,
        shift: float = DEFAULT_SHIFT,
        iters: int | None = None,
        seed: int | Sequence[int] = 0,
        return_predictions: bool = False,
    ) -> DAFlowOutput:
        """Flows of every consecutive pair of ``frames`` ``[B, F, 3, H, W]`` (RGB 0..255, F ≥ 2) for the denoising
        ``steps`` (0-based indices into a ``num_steps`` schedule; default all). Denoising stops after the last
        requested step. ``iters``: refinement iterations (default: the paper's 20 at inference, 12 in its training;
        with ``refiner=True`` the refiner's own a pyramid level). ``seed``: of the starting noise, per clip or one for
        the batch (clip i: ``seed + i``)."""
        if frames.ndim != 5 or frames.shape[2] != 3 or frames.shape[1] < 2:
            raise ValueError(f"frames must be [B, F, 3, H, W] with F >= 2, got {tuple(frames.shape)}")
        wanted = sorted(set(range(num_steps) if steps is None else (int(s) for s in steps)))
        if not wanted or wanted[0] < 0 or wanted[-1] >= num_steps:
            raise ValueError(f"steps must lie in 0..{num_steps - 1}, got {list(steps) if steps is not None else None}")
        b, f = frames.shape[:2]
        iters = self.default_iters if iters is None else iters
        if self.config.refiner:
            return self._forward_refiner(frames, wanted, num_steps=num_steps, shift=shift, seed=seed, iters=iters)
        padder = InputPadder(frames.shape, multiple=TOKEN_STRIDE)
        padded = padder.pad_images(frames.flatten(0, 1).to(self.device))[0]
        padded = padded.view(b, f, *padded.shape[1:])
        size = tuple(padded.shape[-2:])
        spec = TapSpec(blocks=self.config.blocks, attention=self.config.attention, features=("q", "k"))
        out = DAFlowOutput(flows={})
        for step in self.backbone.features(
            padded, taps=spec, steps=num_steps, shift=shift, stop_after=wanted[-1], seed=seed
        ):
            if step.index not in wanted:
                continue
            result = self.refine(padded, self.diffusion_features(step.taps, size), iters=iters)
            flow = padder.unpad(result.flow)
            out.flows[step.index] = flow.view(b, f - 1, *flow.shape[1:])
            out.timesteps[step.index] = step.timestep
            if return_predictions:
                out.predictions[step.index] = result.flow_predictions
        return out

    def _forward_refiner(self, frames, wanted, *, num_steps, shift, seed, iters) -> DAFlowOutput:
        """:meth:`forward` with ``refiner=True``: every pair (k, k+1) of every clip through :meth:`refine_pairs`
        (clip ``i``'s pairs share its noise seed); no per-iteration predictions."""
        b, f = frames.shape[:2]
        seeds = [seed + i for i in range(b)] if isinstance(seed, int) else [int(v) for v in seed]
        first, second = frames[:, :-1].flatten(0, 1).float(), frames[:, 1:].flatten(0, 1).float()
        pair_seeds = [v for v in seeds for _ in range(f - 1)]
        out = DAFlowOutput(flows={})
        for step in wanted:
            flow = self.refine_pairs(
                first, second, step=step, num_steps=num_steps, shift=shift, seed=pair_seeds, iters=iters
            )
            out.flows[step] = flow.view(b, f - 1, *flow.shape[1:])
        return out

    # ------------------------------------------------------------------------------------------- files

    def save(self, folder: str | os.PathLike, *, with_backbone: bool = True) -> Path:
        """``folder/config.json`` + ``folder/flownet.safetensors``; with ``with_backbone`` also the DiT4SR transformer
        (``folder/transformer``) and VAE (``folder/vae``) in their published layouts. Files are written atomically."""
        from safetensors.torch import save_file

        from daflow.files import atomic_path, atomic_write_text
        from daflow.models.dit4sr import save_dit4sr
        from daflow.models.vae import save_vae

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / WEIGHTS_FILE) as tmp:
            save_file(
                {k: v.detach().contiguous().cpu() for k, v in self.flownet_state_dict().items()},
                str(tmp),
                metadata={"format": "pt"},
            )
        if with_backbone:
            save_dit4sr(self.backbone.transformer, folder / "transformer")
            save_vae(self.backbone.vae, folder / "vae")
        atomic_write_text(
            folder / CONFIG_FILE, json.dumps({"_class_name": "DAFlow", **self.config.to_dict()}, indent=2)
        )
        return folder

    @classmethod
    def load(
        cls,
        folder: str | os.PathLike,
        *,
        dit4sr: str | os.PathLike | None = None,
        vae: str | os.PathLike | None = None,
        null_prompt: str | os.PathLike | None = None,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
    ) -> DAFlow:
        """A saved DA-Flow: its flow network from ``folder``; the DiT4SR transformer and VAE from ``dit4sr``/``vae``
        when given, else from ``folder/transformer`` and ``folder/vae``."""
        from safetensors.torch import load_file

        from daflow.models.weights import check_state_dict

        folder = Path(folder)
        cfg_path, weights = folder / CONFIG_FILE, folder / WEIGHTS_FILE
        for p in (cfg_path, weights):
            if not p.is_file():
                raise FileNotFoundError(
                    f"DA-Flow model file not found: {p} (a folder written by DAFlow.save / daflow train flow)"
                )
        from daflow.files import read_json

        data = {k: v for k, v in read_json(cfg_path, what="DA-Flow config.json").items() if not k.startswith("_")}
        config = DAFlowConfig.from_dict(data)
        dit4sr = dit4sr if dit4sr is not None else folder / "transformer"
        vae = vae if vae is not None else folder / "vae"
        backbone = DiffusionBackbone.from_pretrained(dit4sr, vae, null_prompt, dtype=dtype, device=device)
        model = cls(config, backbone)
        sd = load_file(str(weights))
        check_state_dict(
            model.flownet_state_dict(), sd, prefix=f"{weights} does not fit DA-Flow {config}", source="file"
        )
        model.load_state_dict(sd, strict=False)
        return model.to(device)
