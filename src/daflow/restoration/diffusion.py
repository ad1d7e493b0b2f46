"""Diffusion restoration of one clip with the lifted DiT4SR (paper App. C.4) and motion guidance.

A chunk of frames is restored at once (full spatio-temporal attention, §4.2), conditioned on its LQ latents, by one
of two samplers (:data:`SAMPLERS`):

- ``one-step`` (the default of ``daflow restore`` for a restorer trained for it): one deterministic DiT call with the
  LQ latent as the noisy input at level σ*, one Euler step to σ = 0, ``ẑ₀ = z_LQ − σ*·v(z_LQ, σ*)`` (a residual over
  the LQ latent), and the output in image space as a residual over the input, ``x̂ = x_LQ + D(ẑ₀) − D(z_LQ)`` (only
  the DiT's change passes the decoder, so what the VAE cannot reconstruct of the input is kept). The bundled
  restorer is fine-tuned for exactly this call with a latent and a decoded-image fidelity loss
  (:mod:`daflow.train.one_step`, the recipe's ``one_step`` stage): a regression to the clean frames, the posterior
  mean rather than a posterior sample, which is what PSNR and SSIM reward (one-step real-world SR models such as
  OSEDiff and SinSR make the same choice).
- ``full``: the rectified-flow sampler of :mod:`daflow.models.sampler` from pure noise over ``steps`` steps
  (SD3.5's schedule, shift 3): a sample, sharper and less faithful.

Motion guidance (:mod:`daflow.restoration.guidance`) acts on every step's ẑ₀; in the one-step mode that is the output
itself. Frames whose final latents are already known (the overlap with the previous chunk of a long video) are
**anchors**: their ẑ₀ is replaced by the known latents, so the guidance pulls the new frames towards frames already
written and chunks join without a seam.
"""

from __future__ import annotations

import numpy as np
import torch

from daflow.models.sampler import DEFAULT_SHIFT, DEFAULT_STEPS, denoise
from daflow.restoration.guidance import MotionGuidance, PairFlows

SAMPLERS = ("one-step", "full")
ONE_STEP_SIGMA = 0.5  # σ* of the one-step mode (the level the bundled restorer is fine-tuned at)


def chunk_plan(n: int, chunk: int, overlap: int) -> list[tuple[int, int, int]]:
    """``(start, count, anchors)`` of every chunk of an ``n``-frame video: frames ``start … start+count−1``, of
    which the first ``anchors`` were restored by earlier chunks."""
    if n <= chunk:
        return [(0, n, 0)]
    plan, start, done = [], 0, 0
    while done < n:
        start = min(start, n - chunk)
        plan.append((start, chunk, done - start))
        done = start + chunk
        start = done - overlap
    return plan


def one_step_x0(transformer, lq: torch.Tensor, text, pooled, *, sigma: float, num_frames: int) -> torch.Tensor:
    """ẑ₀ ``[B·F, 16, h, w]`` of the one-step mode (module docstring) from LQ latents ``lq`` (differentiable)."""
    param = next(transformer.parameters())
    t = torch.full((len(lq) // num_frames,), sigma * 1000.0, device=lq.device, dtype=param.dtype)
    v = transformer(lq.to(param.dtype), lq.to(param.dtype), text, pooled, t, num_frames=num_frames).float()
    return lq - sigma * v


def residual_image(vae, x: torch.Tensor, z0: torch.Tensor, lq: torch.Tensor) -> torch.Tensor:
    """``x̂_D = x_LQ + D(ẑ₀) − D(z_LQ)`` (module docstring): frames ``x`` ``[N, 3, H, W]`` (0..255), their LQ
    latents ``lq`` and the restored latents ``z0`` ``[N, 16, H/8, W/8]`` → ``[N, 3, H, W]`` (unclamped; differentiable
    in ``z0``)."""
    from daflow.models.vae import decode_differentiable

    return x + decode_differentiable(vae, z0) - decode_differentiable(vae, lq)


def one_step_images(
    backbone,
    frames: torch.Tensor,
    *,
    sigma: float,
    z0: torch.Tensor | None = None,
    lq: torch.Tensor | None = None,
) -> torch.Tensor:
    """The one-step restoration in image space (:func:`residual_image`) of ``frames`` ``[B, F, 3, H, W]`` (0..255,
    sides multiples of 16) → ``[B·F, 3, H, W]`` (unclamped), without gradients; ``z0``: ẑ₀ when already computed
    (e.g. guided), else one DiT call; ``lq``: the frames' LQ latents when already encoded."""
    b, f = frames.shape[:2]
    with torch.no_grad():
        x = frames.flatten(0, 1).to(backbone.device).float()
        lq = backbone.encode_lq(frames) if lq is None else lq
        if z0 is None:
            dtype = next(backbone.transformer.parameters()).dtype
            text, pooled = backbone.prompt.batch(b, device=backbone.device, dtype=dtype)
            z0 = one_step_x0(backbone.transformer, lq, text, pooled, sigma=sigma, num_frames=f)
        return residual_image(backbone.vae, x, z0, lq)


def restore_clip(
    backbone,
    frames: np.ndarray,
    *,
    guidance: MotionGuidance | None = None,
    sampler: str = "full",
    steps: int = DEFAULT_STEPS,
    sigma: float = ONE_STEP_SIGMA,
    shift: float = DEFAULT_SHIFT,
    seed: int = 0,
    anchors: torch.Tensor | None = None,
    lq: torch.Tensor | None = None,
) -> torch.Tensor:
    """Restore ``frames`` ``[F, H, W, 3]`` uint8 (sides multiples of 16) → final latents ``[F, 16, H/8, W/8]``.

    ``anchors`` ``[A, 16, h, w]``: known final latents of the first A frames (see the module docstring); ``lq``:
    the frames' LQ latents when already encoded."""
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    device = backbone.device
    if lq is None:
        lq = backbone.encode_lq(torch.from_numpy(frames).permute(0, 3, 1, 2).float()[None])
    f = len(frames)
    frozen = torch.zeros(f, dtype=torch.bool, device=device)
    if anchors is not None and len(anchors):
        frozen[: len(anchors)] = True
        anchors = anchors.to(device=device, dtype=torch.float32)

    def settle(z0: torch.Tensor) -> torch.Tensor:
        if anchors is not None and len(anchors):
            z0 = torch.cat([anchors, z0[len(anchors) :]])
        return guidance(z0, frozen)[0] if guidance is not None else z0

    transformer = backbone.transformer
    if sampler == "one-step":
        dtype = next(transformer.parameters()).dtype
        text, pooled = backbone.prompt.batch(1, device=device, dtype=dtype)
        with torch.no_grad():
            return settle(one_step_x0(transformer, lq, text, pooled, sigma=sigma, num_frames=f))
    run = denoise(
        transformer,
        lq,
        backbone.prompt,
        num_frames=f,
        steps=steps,
        shift=shift,
        generator=torch.Generator().manual_seed(seed),
        settle=settle,
    )
    for step in run:
        z = step.latents
    return z


def clip_flows(estimator, frames: np.ndarray, device) -> PairFlows:
    """Forward and backward flows ``[F−1, 2, H, W]`` of every consecutive pair of ``frames`` by a ClipEstimator."""
    from daflow.inference import clip_pair_flows

    return PairFlows(*clip_pair_flows(estimator, frames, device=device, backward=True))


def _pad16(frames: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    h, w = frames.shape[1:3]
    ph, pw = (-h) % 16, (-w) % 16
    if ph or pw:
        frames = np.pad(frames, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")
    return frames, (h, w)


def uses_video_head(backbone, settings) -> bool:
    """Whether the resolved ``settings`` (a :class:`~daflow.restoration.video.RestoreSettings`) pass the output through
    a video fidelity head of ``backbone`` (one that aligns neighbouring frames by the flow,
    :mod:`daflow.models.fidelity`)."""
    head = getattr(backbone, "fidelity", None)
    on = settings.method == "diffusion" and settings.sampler == "one-step" and settings.fidelity
    return on and head is not None and head.config.neighbours > 0


def restore_chunk(
    backbone,
    frames: np.ndarray,
    settings,
    *,
    flow_estimator=None,
    anchors=None,
    seed: int = 0,
    context: tuple[np.ndarray | None, np.ndarray | None] = (None, None),
):
    """One chunk of a video: ``frames`` ``[F, H, W, 3]`` uint8 (any size) → (final latents ``[F, 16, h, w]`` of
    the padded frames, the restored new frames ``[F − A, H, W, 3]`` uint8), ``settings`` a
    :class:`~daflow.restoration.video.RestoreSettings`. One-step outputs are image residuals (module docstring).
    ``context``: the video's frames just before and after the chunk (``[H, W, 3]`` or None), which a video fidelity
    head aligns onto the chunk's first and last frames (:func:`daflow.restoration.temporal.align_neighbours`)."""
    from daflow.models.fidelity import apply_head
    from daflow.models.vae import decode_differentiable
    from daflow.restoration.temporal import align_neighbours

    before, after = context
    ext = np.concatenate(
        [f[None] for f in (before,) if f is not None] + [frames] + [f[None] for f in (after,) if f is not None]
    )
    lo, f = int(before is not None), len(frames)
    padded_ext, (h, w) = _pad16(ext)
    x_ext = torch.from_numpy(padded_ext).permute(0, 3, 1, 2).float()
    padded, x = padded_ext[lo : lo + f], x_ext[lo : lo + f]
    head = backbone.fidelity if settings.sampler == "one-step" and settings.fidelity else None
    video_head = uses_video_head(backbone, settings)
    flows = None  # a single frame has no pair: nothing to guide, no neighbour to align
    if (settings.guidance > 0 or video_head) and len(ext) > 1:
        flows = clip_flows(flow_estimator, ext, backbone.device)
        pad = (0, padded.shape[2] - w, 0, padded.shape[1] - h)
        flows = PairFlows(*(torch.nn.functional.pad(f, pad, mode="replicate") for f in (flows.fw, flows.bw)))
    lq = backbone.encode_lq(x[None])
    guidance = None
    if settings.guidance > 0 and f > 1:
        guidance = MotionGuidance(
            PairFlows(flows.fw[lo : lo + f - 1], flows.bw[lo : lo + f - 1]),
            settings.guidance,
            space=settings.space,
            vae=backbone.vae,
            latent_size=(padded.shape[1] // 8, padded.shape[2] // 8),
        )
    latents = restore_clip(
        backbone,
        padded,
        guidance=guidance,
        sampler=settings.sampler,
        steps=settings.steps,
        sigma=settings.sigma,
        seed=seed,
        anchors=anchors,
        lq=lq,
    )
    n_anchor = 0 if anchors is None else len(anchors)
    with torch.no_grad():
        if settings.sampler == "one-step":
            new = x[n_anchor:]
            images = one_step_images(backbone, new[None], sigma=settings.sigma, z0=latents[n_anchor:], lq=lq[n_anchor:])
            if head is not None:
                nbr = None
                if video_head and flows is None:
                    nbr = torch.zeros(len(new), 2, 4, *new.shape[-2:], device=images.device)
                elif video_head:
                    nbr = align_neighbours(x_ext, flows.fw.cpu(), flows.bw.cpu(), range(lo + n_anchor, lo + f))
                    nbr = nbr.to(images.device)
                lq_new = new.to(images.device)
                gate = getattr(backbone, "gate", None)
                if settings.gate and gate is not None:  # the prior's hint weighted by the gate (its docstring)
                    images = lq_new + gate.hint_weight(frames) * (images - lq_new)
                images = apply_head(head, lq_new, images, nbr, ensemble=settings.ensemble)
        else:
            images = decode_differentiable(backbone.vae, latents[n_anchor:])
    images = images.round().clamp(0, 255).byte().permute(0, 2, 3, 1).cpu().numpy()
    return latents, images[:, :h, :w]
