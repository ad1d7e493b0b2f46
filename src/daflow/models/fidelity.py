"""The fidelity head of the tiny restorer: a pixel-space network that fuses the LQ frame with the diffusion output.

The one-step diffusion call (:mod:`daflow.restoration.diffusion`) gives a restored frame ``x̂_D`` that the VAE's
decoder limits and the DiT's small width blurs; the LQ frame ``x_LQ`` still holds detail that neither reproduces.
The head looks at both and predicts the final frame as a correction of the input, in the spirit of StableSR's
controllable feature wrapping and the LQ-aware decoders of real-world diffusion SR (a fidelity module trained with a
pixel loss beside a frozen diffusion prior)::

    x̂ = x_LQ + 127.5 · PixelShuffle₂( N( PixelUnshuffle₂( [x_LQ/127.5 − 1,  (x̂_D − x_LQ)/127.5] ) ) )

``N``: a 3×3 convolution to ``channels``, ``blocks`` residual blocks (conv–ReLU–conv), a 3×3 convolution to 12
channels, **zero-initialised**, so that an untrained head returns its input unchanged.

With ``neighbours = 2`` the head is a video head: it also sees the LQ frames t − 1 and t + 1 warped onto frame t by
the flow (:func:`daflow.restoration.temporal.align_neighbours`), each as ``(W(x_s) − x_LQ)/127.5 · v_s`` and its
visibility ``v_s`` (0 where the forward–backward check fires, the sample leaves the frame or the neighbour does not
exist), four more channels a neighbour: what the temporal filter averages by hand, weighted by what the network
learns (the recurrent alignment of video restorers such as BasicVSR, one step wide).

With ``context`` every residual block's input is modulated, ``h ↦ h·(1 + γ) + β``, by ``(γ, β)`` computed from the
mean of the first features over the whole frame (FiLM from global statistics, zero-initialised): a convolution sees
a few dozen pixels and cannot tell codec damage on sharp footage from noise on a blurred frame; the frame's
statistics can, and the head is trained on a mixture of both. It works at half resolution
(the pixel unshuffle), so frame sides must be even (callers pad). Trained by :mod:`daflow.train.fidelity` with an L1
loss to the clean frames while the DiT stays frozen. ``use_prior=False`` builds the same head blind to the diffusion
output (its second input zeroed): the control that says what the diffusion prior adds.

:func:`apply_head` is how ``daflow restore`` calls a head: with ``ensemble`` > 1 it is the geometric self-ensemble
of image restorers (Lim et al., EDSR, 2017): the head runs on the inputs flipped left–right, top–bottom, both and, at
8, also transposed, each output is mapped back and the results are averaged. Every input (the LQ frame, the
diffusion output, the aligned neighbours and their visibility) is a picture of the same frame, so each transform
moves them together; the frame statistics of ``context`` do not change under it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

WEIGHTS = "fidelity.safetensors"
CONFIG = "config.json"


@dataclass(frozen=True)
class FidelityConfig:
    channels: int = 48
    blocks: int = 6
    use_prior: bool = True
    neighbours: int = 0  # 0: per frame; 2: the frames t − 1 and t + 1 aligned onto t (module docstring)
    context: bool = False  # modulate every block by statistics of the whole frame (module docstring)

    def __post_init__(self):
        if self.channels < 1 or self.blocks < 0:
            raise ValueError(f"channels must be >= 1 and blocks >= 0, got {self.channels}, {self.blocks}")
        if self.neighbours not in (0, 2):
            raise ValueError(f"neighbours must be 0 or 2, got {self.neighbours}")


FIDELITY_PRESETS = {
    "tiny": FidelityConfig(),
    "video": FidelityConfig(neighbours=2, context=True),
    "video-wide": FidelityConfig(channels=64, blocks=8, neighbours=2, context=True),
}


class _Block(nn.Module):
    def __init__(self, channels: int, context: bool = False):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.film = None
        if context:  # (scale, shift) of the block's input from the frame's statistics, zero-initialised
            self.film = nn.Linear(channels, 2 * channels)
            nn.init.zeros_(self.film.weight)
            nn.init.zeros_(self.film.bias)

    def forward(self, x: torch.Tensor, stats: torch.Tensor | None = None) -> torch.Tensor:
        h = x
        if self.film is not None:
            scale, shift = self.film(stats)[..., None, None].chunk(2, dim=1)
            h = x * (1 + scale) + shift
        return x + self.conv2(F.relu(self.conv1(h)))


class FidelityHead(nn.Module):
    """``forward(lq, prior, neighbours=None)``: ``[N, 3, H, W]`` RGB 0..255 each (H, W even), and for a video head
    ``neighbours`` ``[N, 2, 4, H, W]`` (the aligned frames t − 1, t + 1: RGB 0..255 and visibility 0/1) → the final
    frames ``[N, 3, H, W]`` (0..255, unclamped); see the module docstring."""

    def __init__(self, config: FidelityConfig = FidelityConfig()):
        super().__init__()
        self.config = config
        c = config.channels
        self.conv_in = nn.Conv2d((6 + 4 * config.neighbours) * 4, c, 3, padding=1)
        self.blocks = nn.ModuleList([_Block(c, config.context) for _ in range(config.blocks)])
        self.stats = nn.Sequential(nn.Linear(c, c), nn.ReLU()) if config.context else None
        self.conv_out = nn.Conv2d(c, 3 * 4, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, lq: torch.Tensor, prior: torch.Tensor, neighbours: torch.Tensor | None = None) -> torch.Tensor:
        if lq.shape != prior.shape or lq.ndim != 4 or lq.shape[1] != 3:
            raise ValueError(f"lq and prior must both be [N, 3, H, W], got {tuple(lq.shape)} and {tuple(prior.shape)}")
        if lq.shape[-2] % 2 or lq.shape[-1] % 2:
            raise ValueError(
                f"frame sides must be even (the head works at half resolution), got {tuple(lq.shape[-2:])}"
            )
        k = self.config.neighbours
        if k and (neighbours is None or neighbours.shape != (len(lq), k, 4, *lq.shape[-2:])):
            got = None if neighbours is None else tuple(neighbours.shape)
            raise ValueError(f"this video head needs neighbours [N, {k}, 4, H, W] for lq {tuple(lq.shape)}, got {got}")
        hint = (prior - lq) / 127.5 if self.config.use_prior else torch.zeros_like(lq)
        parts = [lq / 127.5 - 1.0, hint]
        for s in range(k):
            vis = neighbours[:, s, 3:]
            parts += [(neighbours[:, s, :3] - lq) / 127.5 * vis, vis]
        x = F.pixel_unshuffle(torch.cat(parts, 1), 2)
        h = F.relu(self.conv_in(x))
        stats = self.stats(h.mean((2, 3))) if self.stats is not None else None
        for block in self.blocks:
            h = block(h, stats)
        y = self.conv_out(h)
        return lq + 127.5 * F.pixel_shuffle(y, 2)


# ``apply_head``'s ensemble sizes: the identity, + left–right, + top–bottom and both, + the transposes of all four
ENSEMBLES = (1, 2, 4, 8)


def _transform(x: torch.Tensor | None, k: int, inverse: bool = False) -> torch.Tensor | None:
    """Dihedral transform ``k`` (0..7) of the last two axes of ``x``: bit 0 flips left–right, bit 1 top–bottom,
    bit 2 transposes (applied after the flips; ``inverse`` undoes it)."""
    if x is None:
        return None
    dims = [d for d, bit in ((-1, 1), (-2, 2)) if k & bit]
    if inverse and k & 4:
        x = x.transpose(-1, -2)
    if dims:
        x = x.flip(dims)
    if not inverse and k & 4:
        x = x.transpose(-1, -2)
    return x


def apply_head(
    head: FidelityHead,
    lq: torch.Tensor,
    prior: torch.Tensor,
    neighbours: torch.Tensor | None = None,
    *,
    ensemble: int = 1,
) -> torch.Tensor:
    """``head(lq, prior, neighbours)`` (shapes as :class:`FidelityHead`), averaged over ``ensemble``
    (:data:`ENSEMBLES`) dihedral transforms of its inputs, each output transformed back (module docstring)."""
    if ensemble not in ENSEMBLES:
        raise ValueError(f"--ensemble must be one of {ENSEMBLES}, got {ensemble}")
    total = None
    for k in range(ensemble):
        args = (_transform(a, k) for a in (lq, prior, neighbours))
        out = _transform(head(*args), k, inverse=True)
        total = out if total is None else total + out
    return total / ensemble


def save_fidelity(head: FidelityHead, folder: str | os.PathLike) -> Path:
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG).write_text(json.dumps({"_class_name": "FidelityHead", **dataclasses.asdict(head.config)}))
    save_file({k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}, str(folder / WEIGHTS))
    return folder


def load_fidelity(folder: str | os.PathLike) -> FidelityHead:
    """A head saved by :func:`save_fidelity`; a missing or malformed file is one clear error naming it."""
    from daflow.models.weights import read_state_dict

    folder = Path(folder)
    config_path = folder / CONFIG
    try:
        data = json.loads(config_path.read_text())
        config = FidelityConfig(**{k: v for k, v in data.items() if k != "_class_name"})
    except (OSError, ValueError, TypeError) as e:
        raise ValueError(f"{config_path}: not a fidelity-head config ({e})") from e
    head = FidelityHead(config)
    head.load_state_dict(read_state_dict(folder / WEIGHTS, what="fidelity head"))
    return head.eval().requires_grad_(False)
