"""Number-for-number parity of daflow's RAFT and SEA-RAFT with ptlflow's (which equal the official code).

Measured on 2026-11-24 (H100 machine, CPU forward, torch 2.11, ptlflow 0.4.2): the difference is exactly 0 px for
RAFT (1 and 12 iterations) and SEA-RAFT-S/M (1 and 4 iterations); BENCHMARKS.md records the run. Skipped unless
the optional ``[baselines]`` extra (ptlflow, which needs torchvision) is installed:
``pytest tests/test_ptlflow_parity.py -rs -s``.
"""

import pytest
import torch

from daflow.models.baselines import load_ptlflow, ptlflow_available
from daflow.models.raft_weights import load_raft
from daflow.models.sea_raft import load_sea_raft

pytestmark = pytest.mark.skipif(not ptlflow_available(), reason="ptlflow (optional extra [baselines]) not installed")

from test_raft import official_state_dict as raft_state_dict  # noqa: E402
from test_sea_raft import official_state_dict as sea_raft_state_dict  # noqa: E402


def _images(h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 3, h, w, generator=g) * 255
    # a smooth shifted second frame so that the flow is not noise
    return base, torch.roll(base, shifts=(2, -3), dims=(2, 3))


def _report(name, ours, ref):
    diff = (ours - ref).abs().max().item()
    print(f"{name}: max |ours - ptlflow| = {diff:.3g} px (max |flow| {ref.abs().max().item():.3g})")
    return diff


# Random weights make the recurrence chaotic (flows of hundreds of pixels), so a last-bit difference anywhere
# grows with the iterations; one iteration shows the per-step agreement.
@pytest.mark.parametrize("iters", [1, 12])
@torch.no_grad()
def test_raft_matches_ptlflow(iters):
    sd = raft_state_dict(seed=4)
    a, b = _images(256, 384)
    ours = load_raft(sd).eval()(a, b, iters=iters).flow
    ref = load_ptlflow("raft", sd, iters=iters)(a, b)
    assert _report(f"RAFT {iters} it", ours, ref) <= 1e-5 * max(1.0, ref.abs().max().item())


@pytest.mark.parametrize("preset", ["sea-raft-s", "sea-raft-m"])
@pytest.mark.parametrize("iters", [1, 4])
@torch.no_grad()
def test_sea_raft_matches_ptlflow(preset, iters):
    sd = sea_raft_state_dict(preset, seed=5)
    a, b = _images(256, 384)
    ours = load_sea_raft(sd, preset).eval()(a, b, iters=iters).flow
    ref = load_ptlflow(preset, sd, iters=iters)(a, b)
    assert _report(f"{preset} {iters} it", ours, ref) <= 1e-5 * max(1.0, ref.abs().max().item())
