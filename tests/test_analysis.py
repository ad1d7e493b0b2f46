"""Zero-shot correspondence (paper §4.3, Eq. 12): the math on features whose flow is known, the layer x step
runner, the labeled (LQ + pseudo-gt) dataset, reports and `daflow analyze`."""

import json

import numpy as np
import pytest
import torch

from daflow.cli import main
from daflow.data.base import DatasetLayoutError, FlowSample
from daflow.data.labeled import LabeledClips
from daflow.data.specs import build_eval_sets
from daflow.eval.analysis import LayerStepTable, cost_volume, match_tokens, run_analysis, zero_shot_flow
from daflow.eval.report import load_series, write_analysis
from daflow.files import write_image
from daflow.flow.io import write_flow
from daflow.models.backbone import DiffusionBackbone


def _shifted_features(h, w, dx, dy, c=None, scale=10.0, seed=0):
    """Orthogonal features per token for frame k; frame k+1 holds frame k's feature of token (y, x) at
    (y + dy, x + dx) (the flow is exactly (dx, dy) tokens wherever the target lies inside the grid)."""
    g = torch.Generator().manual_seed(seed)
    c = c or h * w
    basis = torch.linalg.qr(torch.randn(c, c, generator=g))[0][: h * w] * scale  # [h·w, C] orthogonal rows
    src = basis.reshape(1, h, w, c)
    tgt = torch.zeros_like(src)
    tgt[:, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = src[
        :, max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)
    ]
    return src, tgt


def test_cost_volume_is_the_dot_product_of_eq_12():
    q, k = torch.randn(2, 3, 4, 8), torch.randn(2, 3, 4, 8)
    cost = cost_volume(q, k)
    assert cost.shape == (2, 12, 12)
    torch.testing.assert_close(cost[1, 5, 7], (q[1, 5 // 4, 5 % 4] * k[1, 7 // 4, 7 % 4]).sum())
    with pytest.raises(ValueError, match=r"\[B, h, w, C\]"):
        cost_volume(q, torch.randn(2, 3, 4, 7))


@pytest.mark.parametrize("dx,dy", [(2, 1), (-1, 0), (0, -2)])
def test_hard_and_soft_argmax_recover_a_known_shift(dx, dy):
    h, w = 5, 7
    src, tgt = _shifted_features(h, w, dx, dy)
    inside = torch.zeros(h, w, dtype=torch.bool)  # source tokens whose target lies in the grid
    inside[max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)] = True
    hard = match_tokens(src, tgt, mode="hard")
    assert torch.equal(hard[0, 0][inside], torch.full((int(inside.sum()),), float(dx)))
    assert torch.equal(hard[0, 1][inside], torch.full((int(inside.sum()),), float(dy)))
    # orthogonal features of norm 10: the correct match scores 100 against 0 elsewhere, so softmax is a delta
    soft = match_tokens(src, tgt, mode="soft", temperature=1.0, chunk=4)  # chunking does not change the result
    torch.testing.assert_close(soft[0, 0][inside], hard[0, 0][inside], atol=1e-6, rtol=0)
    # a high temperature spreads the soft-argmax towards the grid centre
    assert not torch.allclose(match_tokens(src, tgt, temperature=1e4)[0][:, inside], hard[0][:, inside], atol=0.1)


def test_zero_shot_flow_scales_tokens_to_pixels_and_upsamples():
    src, tgt = _shifted_features(4, 6, 1, -1)
    flow = zero_shot_flow(src, tgt, (64, 96), mode="hard")
    assert flow.shape == (1, 2, 64, 96)
    # tokens of 16 px: a shift of (1, -1) tokens is (16, -16) px; away from the invalid border it is exact
    torch.testing.assert_close(flow[0, 0, 24:48, 0:64], torch.full((24, 64), 16.0))
    torch.testing.assert_close(flow[0, 1, 24:48, 0:64], torch.full((24, 64), -16.0))
    # non-square strides: an 8x12 grid on a 64x192 image has 8 px rows and 16 px columns
    src2, tgt2 = _shifted_features(8, 12, 1, 1)
    flow2 = zero_shot_flow(src2, tgt2, (64, 192), mode="hard")
    assert flow2[0, 0, 20, 40].item() == 16.0 and flow2[0, 1, 20, 40].item() == 8.0


def test_layer_step_table_ranking_and_markdown():
    m = lambda e: {"epe": e, "1px": 50.0, "3px": 20.0, "5px": 10.0}  # noqa: E731
    t = LayerStepTable(
        "qk", "attn", [1000.0, 500.0], {0: [m(3.0), m(3.0)], 1: [m(1.0), m(2.0)], 2: [m(1.4), m(1.4)]}, pairs=4
    )
    assert t.ranking() == [2, 1, 0] and t.mean_epe()[1] == 1.5
    assert t.epe().shape == (3, 2)
    md = t.markdown()
    assert "| 1 | 1.000 | 2.000 | 1.500 | 2 |" in md


class _OracleBackbone:
    """Stands in for the DiT: 'taps' that are the exact shifted features of a known flow (block 1 exact, block 0
    noise), so that the runner's bookkeeping (padding, pairs, steps, EPE) can be checked exactly."""

    def __init__(self, dx, dy):
        self.dx, self.dy = dx, dy
        self.transformer = type(
            "T", (), {"config": type("C", (), {"num_layers": 2, "dual_attention_layers": (0,)})()}
        )()

    def features(self, frames, *, taps, steps, shift, seed):
        from daflow.models.sampler import DenoiseStep

        b, f, _, hp, wp = frames.shape
        h, w = hp // 16, wp // 16
        src, tgt = _shifted_features(h, w, self.dx, self.dy, c=h * w + 3)
        exact = torch.cat([src, tgt, torch.zeros_like(src)][:f]).unsqueeze(0)  # frames 0 -> 1 exact
        noise = torch.randn(1, f, h, w, h * w + 3, generator=torch.Generator().manual_seed(seed))
        for i in range(steps):
            yield DenoiseStep(
                i,
                1.0,
                1000.0 - i,
                {0: {"q": noise, "k": noise, "adanorm": noise}, 1: {"q": exact, "k": exact, "adanorm": exact}},
                None,
                None,
            )


def test_run_analysis_on_an_oracle_measures_the_exact_flow():
    h, w = 48, 64  # 3x4 tokens
    flow = np.zeros((1, h, w, 2), np.float32)
    flow[..., 0], flow[..., 1] = 16.0, 0.0
    sample = FlowSample(frames=np.zeros((2, h, w, 3), np.uint8), flow=flow, valid=None)
    valid = np.zeros((1, h, w), bool)
    valid[:, 8:40, 8:40] = True  # away from the border where the shift leaves the grid
    sample.valid = valid
    tables = run_analysis(
        _OracleBackbone(1, 0), [sample, sample], features=("qk", "adanorm"), steps=3, mode="hard", progress=False
    )
    assert [t.feature for t in tables] == ["qk", "adanorm"]
    for t in tables:
        assert t.pairs == 2 and t.timesteps == [1000.0, 999.0, 998.0]
        assert t.blocks == [0, 1] and t.ranking()[0] == 1
        assert all(m["epe"] == 0.0 and m["1px"] == 0.0 for m in t.metrics[1])
        assert all(m["epe"] > 1.0 for m in t.metrics[0])
    with pytest.raises(ValueError, match="blocks"):
        run_analysis(_OracleBackbone(1, 0), [sample], blocks=[5], progress=False)
    with pytest.raises(ValueError, match="features"):
        run_analysis(_OracleBackbone(1, 0), [sample], features=("v",), progress=False)


def test_run_analysis_with_the_tiny_backbone_and_reports(tmp_path):
    backbone = DiffusionBackbone.from_preset("tiny", seed=0)
    rng = np.random.default_rng(0)
    sample = FlowSample(
        frames=rng.integers(0, 255, (3, 40, 56, 3), dtype=np.uint8),  # padded to 48x64 inside
        flow=rng.normal(size=(2, 40, 56, 2)).astype(np.float32),
    )
    tables = run_analysis(backbone, [sample], features=("qk", "adanorm"), steps=2, progress=False)
    assert [t.blocks for t in tables] == [[0, 1, 2, 3], [0, 1, 2, 3]] and tables[0].pairs == 2
    attn2 = run_analysis(backbone, [sample], attention="attn2", steps=1, progress=False)[0]
    assert attn2.blocks == list(backbone.transformer.config.dual_attention_layers)
    paths = write_analysis(tmp_path / "run", "Random", tables, meta={"steps": 2})
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths)
    assert not list((tmp_path / "run").glob(".*part*"))
    series = load_series(tmp_path / "run" / "analysis.json")
    assert [s[0] for s in series] == ["Random Q/K (attn)", "Random post-AdaNorm"]
    assert series[0][1].mean_epe() == pytest.approx(tables[0].mean_epe())
    with pytest.raises(ValueError, match="analysis.json"):
        (tmp_path / "bad.json").write_text("{}")
        load_series(tmp_path / "bad.json")


def _labeled_tree(tmp_path, n=4, h=32, w=48):
    """An LQ mirror folder (frame_%06d.png) and pseudo-gt labels named %06d.flo, as the two commands write them."""
    rng = np.random.default_rng(0)
    lq, labels = tmp_path / "lq" / "cat" / "clip1", tmp_path / "pgt" / "cat" / "clip1"
    flows = rng.normal(size=(n - 1, h, w, 2)).astype(np.float32)
    for i in range(n):
        write_image(lq / f"frame_{i:06d}.png", rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    for i in range(n - 1):
        write_flow(labels / f"{i:06d}.flo", flows[i])
    return tmp_path / "lq", tmp_path / "pgt", flows


def test_labeled_clips_pair_frames_and_labels_by_index(tmp_path):
    lq, pgt, flows = _labeled_tree(tmp_path, n=5)
    ds = LabeledClips(lq, pgt, num_frames=3, stride=2)
    assert len(ds) == 2
    s = ds[1]
    assert s.frames.shape == (3, 32, 48, 3) and s.flow.shape == (2, 32, 48, 2)
    np.testing.assert_allclose(s.flow, flows[2:4])
    assert s.meta["frames"] == ["frame_000002", "frame_000003", "frame_000004"]
    (eval_set,) = build_eval_sets(f"labeled:{lq}?labels={pgt}", num_frames=3, stride=2)
    assert len(eval_set.dataset) == 2
    assert len(build_eval_sets(f"labeled:{lq}?labels={pgt}")[0].dataset) == 4  # pairs by default
    with pytest.raises(ValueError, match="labels=DIR"):
        build_eval_sets(f"labeled:{lq}")
    (pgt / "cat" / "clip1" / "000003.flo").unlink()
    with pytest.raises(DatasetLayoutError, match="4 flow files were expected"):
        LabeledClips(lq, pgt)
    with pytest.raises(DatasetLayoutError, match="label folder not found"):
        LabeledClips(lq, tmp_path / "nowhere")


def test_daflow_analyze_end_to_end_on_the_tiny_preset(tmp_path, capsys):
    out = tmp_path / "an"
    rc = main(
        [
            "analyze",
            "--data",
            "synthetic:default?n=2&size=48x64&degrade=realbasicvsr",
            "--random-init",
            "--steps",
            "3",
            "--features",
            "both",
            "--no-progress",
            "-o",
            str(out),
            "--label",
            "Baseline",
        ]
    )
    assert rc == 0
    record = json.loads((out / "analysis.json").read_text())
    assert record["label"] == "Baseline" and [t["feature"] for t in record["tables"]] == ["qk", "adanorm"]
    assert len(record["tables"][0]["metrics"]["0"]) == 3 and record["tables"][0]["pairs"] == 4
    for name in ("analysis.md", "top_layers.png", "top4_steps.png", "all_layers.png"):
        assert (out / name).stat().st_size > 0
    assert "best blocks" in capsys.readouterr().out
    rc = main(
        [
            "analyze",
            "--data",
            "synthetic:default?n=1&size=48x64",
            "--random-init",
            "--steps",
            "2",
            "--no-progress",
            "-o",
            str(tmp_path / "an2"),
            "--compare",
            str(out / "analysis.json"),
        ]
    )
    assert rc == 0
    assert "Baseline post-AdaNorm" in (tmp_path / "an2" / "analysis.md").read_text()
    assert main(["analyze", "--data", "synthetic:default?n=1", "-o", str(tmp_path / "x")]) == 1
    assert "--dit4sr and --vae" in capsys.readouterr().err
    assert (
        main(
            ["analyze", "--data", "synthetic:default?n=1", "--random-init", "--blocks", "9", "-o", str(tmp_path / "x")]
        )
        == 1
    )
    assert "blocks [9] do not exist" in capsys.readouterr().err
