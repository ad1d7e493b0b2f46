"""Motion-guided sampling for temporally consistent restoration (paper App. C.4, after MGLD, Yang et al. 2024).

The lifted DiT4SR restores an F-frame clip by the rectified-flow sampler of :mod:`daflow.models.sampler`. At step i
(noise level σ → σ'), the network's velocity ``v`` gives the predicted clean latents and the predicted noise

    ẑ₀ = z − σ·v,        ε̂ = z + (1 − σ)·v,        and the Euler step is  z' = (1 − σ')·ẑ₀ + σ'·ε̂.

Motion guidance takes one gradient step on ẑ₀ before re-noising, with the occlusion-masked warping loss between
neighbouring frames (flows of a chosen model on the LQ input, forward t→t+1 and backward t+1→t):

    L(x) = ½ Σ_t Σ_p M^f_t(p)·‖x_t(p) − x_{t+1}(p + f_t(p))‖² + ½ Σ_t Σ_p M^b_t(p)·‖x_{t+1}(p) − x_t(p + b_t(p))‖²
    ẑ₀ ← ẑ₀ − w·∂L/∂ẑ₀

with ``x = ẑ₀`` (``space="latent"``, MGLD's choice; flows resized to the latent grid, values scaled) or
``x = D(ẑ₀)/255`` (``space="image"``, the paper's variant: through the VAE decoder, loss divided by the 64 pixels
of a latent cell so that ``w`` means about the same in both spaces). ``M`` is 1 where MGLD's forward–backward
test (plain norms, α = 0.01, β = 0.5) finds the pixel visible. In latent space ``w = 1`` moves each visible
latent all the way to its warped neighbour (the gradient of ½‖a − b‖² is a − b); ``w = 0`` is per-frame
restoration. MGLD guides the noisy latents after each step; guiding ẑ₀ (as DPS-style methods do) acts on what
the step will produce, and on the last step (σ' = 0) it acts on the output itself.

Frames whose final latents are already known (the overlap with the previous chunk of a long video) are
**anchors**: their ẑ₀ is replaced by the known latents at every step, so the new frames are guided towards
frames already written and chunks join without a seam.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from daflow.flow.warp import backward_warp, forward_backward_occlusion, resize_flow

GUIDANCE_SPACES = ("latent", "image")


@dataclass
class PairFlows:
    """Flows of the consecutive pairs of a clip at pixel resolution: ``fw`` ``[F−1, 2, H, W]`` (t → t+1) and
    ``bw`` (t+1 → t)."""

    fw: torch.Tensor
    bw: torch.Tensor

    def __post_init__(self):
        if self.fw.shape != self.bw.shape or self.fw.ndim != 4 or self.fw.shape[1] != 2:
            raise ValueError(
                f"flows must both be [F-1, 2, H, W], got {tuple(self.fw.shape)} and {tuple(self.bw.shape)}"
            )

    def resized(self, size: tuple[int, int]) -> PairFlows:
        """The flows on another grid (bilinear), values scaled by the size ratio."""
        if tuple(self.fw.shape[-2:]) == tuple(size):
            return self
        return PairFlows(resize_flow(self.fw, size), resize_flow(self.bw, size))

    def visibility(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``M^f``, ``M^b`` ``[F−1, 1, H, W]`` (1 = visible) by MGLD's forward–backward test."""
        occ_f = forward_backward_occlusion(self.fw, self.bw, squared=False)
        occ_b = forward_backward_occlusion(self.bw, self.fw, squared=False)
        return (~occ_f).float()[:, None], (~occ_b).float()[:, None]


def warping_loss(x: torch.Tensor, flows: PairFlows, masks: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """``L(x)`` of the module docstring for frames ``x`` ``[F, C, h, w]`` and flows on the same grid."""
    m_f, m_b = masks
    fwd = x[:-1] - backward_warp(x[1:], flows.fw.to(x.dtype))
    bwd = x[1:] - backward_warp(x[:-1], flows.bw.to(x.dtype))
    return 0.5 * ((m_f * fwd) ** 2).sum() + 0.5 * ((m_b * bwd) ** 2).sum()


class MotionGuidance:
    """One guidance step on predicted clean latents ``[F, 16, h, w]`` (see the module docstring)."""

    def __init__(
        self,
        flows: PairFlows,
        weight: float,
        *,
        space: str = "latent",
        vae=None,
        latent_size: tuple[int, int] | None = None,
    ):
        if weight < 0:
            raise ValueError(f"guidance weight must be >= 0, got {weight}")
        if space not in GUIDANCE_SPACES:
            raise ValueError(f"guidance space must be one of {GUIDANCE_SPACES}, got {space!r}")
        if space == "image" and vae is None:
            raise ValueError("image-space guidance needs the VAE (its decoder)")
        self.weight, self.space, self.vae = weight, space, vae
        if space == "latent":
            if latent_size is None:
                raise ValueError("latent-space guidance needs the latent grid size")
            flows = flows.resized(latent_size)
        self.flows = flows
        self.masks = flows.visibility()

    def loss(self, z0: torch.Tensor) -> torch.Tensor:
        if self.space == "latent":
            return warping_loss(z0, self.flows, self.masks)
        from daflow.models.vae import decode_differentiable

        images = decode_differentiable(self.vae, z0) / 255.0
        return warping_loss(images, self.flows, self.masks) / 64.0

    def __call__(self, z0: torch.Tensor, frozen: torch.Tensor | None = None) -> tuple[torch.Tensor, float]:
        """``ẑ₀ − w·∂L/∂ẑ₀`` (``frozen`` ``[F]`` bool: anchor frames, not moved) and the loss before the step."""
        if self.weight == 0:
            return z0, float("nan")
        z = z0.detach().float().requires_grad_(True)
        with torch.enable_grad():
            loss = self.loss(z)
            (grad,) = torch.autograd.grad(loss, z)
        if frozen is not None:
            grad = grad * (~frozen).to(grad.dtype).view(-1, 1, 1, 1)
        return (z0.float() - self.weight * grad).detach(), float(loss.detach())
