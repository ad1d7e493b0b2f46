"""The rectified-flow denoising run DA-Flow reads its features from (paper §3, Eq. 3–6; §5.1: 10 steps).

Schedule: SD3.5's ``FlowMatchEulerDiscreteScheduler`` (1000 training timesteps, shift 3.0, no dynamic shifting).
For 10 steps the model timesteps are ``[1000, 960.13, 913.35, 857.69, 790.37, 707.28, 602.15, 464.88, 278.05,
8.93]`` (= σ·1000) and σ runs from 1 to 0.

**Sign convention.** The paper writes ``z_t = (1 − t)·ε + t·z_HQ`` and the velocity ``v = z_HQ − ε`` (Eq. 3–5).
diffusers, DiT4SR and this package use σ = 1 − t: ``z_σ = (1 − σ)·z₀ + σ·ε`` and the network predicts
``v = ε − z₀`` (= −v_paper); an Euler step is ``z ← z + (σ_next − σ)·v``.

:func:`denoise` starts from Gaussian noise (DiT4SR's default start point), conditions every step on the LQ latents
and the prompt, and yields after every step the tapped features (:mod:`daflow.models.taps`), so a caller can
stop after any step: step ``k`` costs ``k + 1`` transformer calls.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from daflow.models.prompt import PromptEmbeds
from daflow.models.taps import TapRecorder, TapSpec

DEFAULT_STEPS = 10
DEFAULT_SHIFT = 3.0


@dataclass(frozen=True)
class Schedule:
    """``sigmas`` ``[N+1]`` (from 1 down to 0) and model ``timesteps`` ``[N]`` (= σ·1000), float32."""

    sigmas: torch.Tensor
    timesteps: torch.Tensor

    def __len__(self) -> int:
        return len(self.timesteps)


def make_schedule(
    steps: int = DEFAULT_STEPS, *, shift: float = DEFAULT_SHIFT, num_train_timesteps: int = 1000
) -> Schedule:
    """The inference schedule of SD3.5's scheduler for ``steps`` steps."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    sched = FlowMatchEulerDiscreteScheduler(num_train_timesteps=num_train_timesteps, shift=shift)
    sched.set_timesteps(steps)
    return Schedule(sigmas=sched.sigmas.float().cpu(), timesteps=sched.timesteps.float().cpu())


def training_sigmas(*, shift: float = DEFAULT_SHIFT, num_train_timesteps: int = 1000) -> torch.Tensor:
    """The scheduler's 1000 training σ (descending), indexed by the sampled timestep in stage-1 training."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=num_train_timesteps, shift=shift).sigmas.float().cpu()


def euler_step(latents: torch.Tensor, velocity: torch.Tensor, sigma: float, sigma_next: float) -> torch.Tensor:
    """``z + (σ_next − σ)·v`` in float32 (as diffusers' scheduler)."""
    return latents.float() + (sigma_next - sigma) * velocity.float()


@dataclass
class DenoiseStep:
    """What one step gives: ``index`` (0-based), ``sigma`` and model ``timestep`` of the step, the ``taps``
    (``{block: {name: [B, F, h, w, C]}}``), the ``velocity`` and the ``latents`` after the Euler step
    (both ``[B·F, 16, h, w]``)."""

    index: int
    sigma: float
    timestep: float
    taps: dict[int, dict[str, torch.Tensor]]
    velocity: torch.Tensor
    latents: torch.Tensor


def denoise(
    transformer,
    lq_latents: torch.Tensor,
    prompt: PromptEmbeds,
    *,
    num_frames: int,
    steps: int = DEFAULT_STEPS,
    shift: float = DEFAULT_SHIFT,
    taps: TapSpec | None = None,
    stop_after: int | None = None,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    settle: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> Iterator[DenoiseStep]:
    """Run the lifted DiT4SR's sampler on ``lq_latents`` ``[B·F, 16, h, w]`` (clips of ``num_frames``), yielding
    each step; ``stop_after=k`` ends after step ``k`` (0-based). ``noise`` (same shape) or ``generator`` fixes
    the start; the noise is drawn on the CPU so that a seed gives the same start on every device.

    ``settle``: the guidance hook. Given, each step splits the velocity into the predicted clean latents
    ``ẑ₀ = z − σ·v`` and noise ``ε = z + (1 − σ)·v``, passes ``ẑ₀`` through ``settle`` (motion guidance, anchored
    frames: :mod:`daflow.restoration.diffusion`) and steps to ``(1 − σ')·settle(ẑ₀) + σ'·ε`` — the Euler step when
    ``settle`` is the identity."""
    schedule = make_schedule(steps, shift=shift)
    last = len(schedule) - 1 if stop_after is None else stop_after
    if not 0 <= last < len(schedule):
        raise ValueError(f"stop_after must lie in 0..{len(schedule) - 1}, got {stop_after}")
    cfg = transformer.config
    prompt.check(cfg.joint_attention_dim, cfg.pooled_projection_dim)
    param = next(transformer.parameters())
    device, dtype = param.device, param.dtype
    if noise is None:
        noise = torch.randn(lq_latents.shape, generator=generator, dtype=torch.float32)
    elif noise.shape != lq_latents.shape:
        raise ValueError(f"noise {tuple(noise.shape)} must match lq_latents {tuple(lq_latents.shape)}")
    latents = noise.to(device=device, dtype=torch.float32)
    lq = lq_latents.to(device=device, dtype=dtype)
    b = lq.shape[0] // num_frames
    text, pooled = prompt.batch(b, device=device, dtype=dtype)
    recorder = TapRecorder(taps) if taps is not None else None
    for i in range(last + 1):
        sigma, sigma_next = float(schedule.sigmas[i]), float(schedule.sigmas[i + 1])
        t = float(schedule.timesteps[i])
        with torch.no_grad():
            velocity = transformer(
                latents.to(dtype),
                lq,
                text,
                pooled,
                torch.full((b,), t, device=device, dtype=dtype),
                num_frames=num_frames,
                taps=recorder,
            )
        if settle is None:
            latents = euler_step(latents, velocity, sigma, sigma_next)
        else:
            v = velocity.float()
            z0, eps = latents - sigma * v, latents + (1 - sigma) * v
            latents = (1 - sigma_next) * settle(z0) + sigma_next * eps
        yield DenoiseStep(
            index=i,
            sigma=sigma,
            timestep=t,
            taps=recorder.pop() if recorder is not None else {},
            velocity=velocity,
            latents=latents,
        )
