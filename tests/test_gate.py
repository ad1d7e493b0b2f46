"""The restorer's degradation gate: its statistics, its fit on labelled mirrors, its file, and its place in
``daflow restore`` (the weight of the diffusion output the fidelity head sees)."""

import json

import numpy as np
import pytest
import torch

from daflow.data.degrade import degrade_clip, sample_params
from daflow.data.synthetic import SyntheticConfig, render_clip
from daflow.data.video import FrameSource
from daflow.files import write_image
from daflow.models.backbone import DiffusionBackbone
from daflow.models.fidelity import FidelityConfig, FidelityHead
from daflow.models.gate import STATISTICS, CodecGate, damage_statistics, fit_gate, load_gate
from daflow.restoration import RestoreSettings, restore_video


def _clips(preset: str, seeds) -> list[np.ndarray]:
    out = []
    for seed in seeds:
        hq = render_clip(SyntheticConfig(height=64, width=64, num_frames=3), seed).frames
        out.append(degrade_clip(hq, sample_params(preset, 3, hq.shape[1:3], seed)))
    return out


def test_the_gate_tells_codec_damage_alone_from_the_realbasicvsr_pipeline(tmp_path):
    """Fitted on a few synthetic clips per kind, the gate gives held-out codec-only clips a higher codec probability
    than held-out RealBasicVSR clips; it saves and loads to the same numbers; bad files are one clear error."""
    codec, other = _clips("h264", range(6)), _clips("realbasicvsr", range(6))
    gate, accuracy = fit_gate(codec + other, [1] * 6 + [0] * 6)
    assert accuracy >= 0.9 and len(gate.weight) == len(STATISTICS) == damage_statistics(codec[0]).shape[0]
    held_codec, held_other = _clips("h264", (100, 101)), _clips("realbasicvsr", (100, 101))
    assert min(gate.probability(c) for c in held_codec) > max(gate.probability(c) for c in held_other)
    assert gate.hint_weight(held_other[0]) == pytest.approx(1 - gate.probability(held_other[0]))
    gate.save(tmp_path)
    assert load_gate(tmp_path) == gate
    (tmp_path / "gate.json").write_text(json.dumps({"mean": [0.0]}))
    with pytest.raises(ValueError, match="not a degradation gate"):
        load_gate(tmp_path)
    with pytest.raises(ValueError, match="both labels"):
        fit_gate(codec, [1] * 6)
    with pytest.raises(ValueError, match="uint8"):
        damage_statistics(codec[0].astype(np.float32))


def _fixed_gate(p: float) -> CodecGate:
    """A gate that says ``p`` for any input (zero weights, bias logit(p))."""
    n = len(STATISTICS)
    return CodecGate((0.0,) * n, (1.0,) * n, (0.0,) * n, float(np.log(p / (1 - p))))


def test_restore_weights_the_prior_the_head_sees_by_the_gate(tmp_path, monkeypatch):
    """With a gate, the fidelity head sees ``x_LQ + (1 − p)·(x̂_D − x_LQ)``: at p → 1 the LQ frames themselves, at
    p → 0 the DiT's output; ``gate=False`` (``--no-gate``) gives the DiT's output whatever the gate says."""
    rng = np.random.default_rng(0)
    for k in range(3):
        write_image(tmp_path / "lq" / f"frame_{k:04d}.png", rng.integers(0, 256, (32, 48, 3), dtype=np.uint8))
    backbone = DiffusionBackbone.from_preset("tiny", seed=0).eval()
    backbone.fidelity = FidelityHead(FidelityConfig(channels=8, blocks=1)).eval()
    seen = []
    real = backbone.fidelity.forward
    monkeypatch.setattr(
        backbone.fidelity, "forward", lambda lq, p, nbr=None: (seen.append((lq, p)), real(lq, p, nbr))[1]
    )
    base = RestoreSettings(sampler="one-step", sigma=0.5, guidance=0.0, prefilter=False, ensemble=1)

    def hint(p: float | None, **kw) -> torch.Tensor:
        seen.clear()
        backbone.gate = None if p is None else _fixed_gate(p)
        out = tmp_path / f"out_{p}_{len(kw)}"
        restore_video(
            backbone, FrameSource(tmp_path / "lq"), out, RestoreSettings(**{**vars(base), **kw}), progress=False
        )
        return torch.cat([prior - lq for lq, prior in seen])

    full = hint(None)
    assert full.abs().max() > 0  # the DiT changes its input
    torch.testing.assert_close(hint(1 - 1e-9), torch.zeros_like(full), rtol=0, atol=1e-3)
    torch.testing.assert_close(hint(0.25), 0.75 * full, rtol=0, atol=1e-3)
    torch.testing.assert_close(hint(0.25, gate=False), full, rtol=0, atol=0)
