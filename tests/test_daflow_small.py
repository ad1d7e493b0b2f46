"""DA-Flow on the default's refiner (``refiner=True``, preset ``small``): the hybrid surgery keeps it equal to the
bundled dis-raft before training, and stage 2 trains it on the refiner's mixture clips."""

import pytest
import torch

from daflow.models import bundled
from daflow.models.daflow import DAFLOW_PRESETS, DAFlow, DAFlowConfig
from daflow.models.registry import dis_raft_estimator

REFINER_WEIGHTS = bundled.bundled_path(bundled.REFINER) / "raft.safetensors"


@pytest.fixture(scope="module")
def backbone():
    """The bundled restorer's lifted DiT and VAE (6 blocks: the small preset taps 0, 2, 3, 5)."""
    b = bundled.load_restorer()
    b.fidelity = None
    return b


def _frames(h: int, w: int, shift=(3, -2), seed: int = 0):
    from daflow.data.synthetic import SyntheticConfig, render_clip

    frame = render_clip(SyntheticConfig(height=h, width=w, num_frames=2), seed).frames[0]
    a = torch.from_numpy(frame).permute(2, 0, 1)[None].float()
    return a, torch.roll(a, shifts=shift, dims=(-2, -1))


@pytest.mark.parametrize("size", [(100, 124), (384, 400)])  # one pyramid level; two (the DiT at each level)
def test_small_equals_dis_raft_before_training(backbone, size):
    a, b = _frames(*size)
    a, b = torch.cat([a, b]), torch.cat([b, a])  # two pairs, moving both ways
    model = DAFlow.from_refiner("small", backbone, REFINER_WEIGHTS).eval()
    with torch.no_grad():
        ref = dis_raft_estimator()(a, b)
        got = model.refine_pairs(a, b)
        # the features are not zero: the query and context heads give non-zero maps, only the key head starts at 0
        feats = model.pair_features(a[:1, :, :88, :120], b[:1, :, :88, :120])  # sides of 8, padded to 16 inside
    assert torch.equal(ref, got)
    fq, fk = feats["extra_features"]
    assert fq.abs().sum() > 0 and feats["extra_context"].abs().sum() > 0 and torch.count_nonzero(fk) == 0
    assert fq.shape[-2:] == (11, 15)
    # the clip interface gives the same flows, pair by pair (clip i: seed i)
    with torch.no_grad():
        out = model(torch.stack([a[0], b[0], a[0]])[None], steps=[0])
    assert torch.equal(out.flows[0][0], ref)


def test_small_config_is_checked(backbone):
    assert DAFLOW_PRESETS["small"].refiner and not DAFLOW_PRESETS["small"].dpt_pos_embed
    with pytest.raises(ValueError, match="raft='small'"):
        DAFlowConfig(refiner=True)
    with pytest.raises(ValueError, match="dpt_pos_embed=False"):
        DAFlow.from_refiner(DAFlowConfig(**{**DAFLOW_PRESETS["small"].to_dict(), "dpt_pos_embed": True}), backbone, {})
    with pytest.raises(ValueError, match="refiner=True"):
        DAFlow(DAFlowConfig(**{**DAFLOW_PRESETS["small"].to_dict(), "refiner": False}), backbone).refine_pairs(
            torch.zeros(1, 3, 64, 64), torch.zeros(1, 3, 64, 64)
        )


def test_stage2_trains_the_heads_and_resumes_exactly(backbone, tmp_path):
    from daflow.train.mixture import build_cache
    from daflow.train.refine import REFINE_PRESETS, train_refiner

    build_cache(tmp_path / "m", 2, config="tiny", progress=False)
    cfg = REFINE_PRESETS["tiny"]
    info = {"preset": "small", "backbone": "bundled restorer"}

    def fresh():
        return DAFlow.from_refiner("small", backbone, REFINER_WEIGHTS)

    a = fresh()
    train_refiner(tmp_path / "m", tmp_path / "a", cfg, init=REFINER_WEIGHTS, hybrid=a, hybrid_info=info, progress=False)
    b = fresh()
    kw = {"init": REFINER_WEIGHTS, "hybrid": b, "hybrid_info": info, "progress": False}
    train_refiner(tmp_path / "m", tmp_path / "b", cfg, stop_at=3, **kw)
    train_refiner(tmp_path / "m", tmp_path / "b", cfg, **{**kw, "hybrid": fresh()})
    start = fresh()
    # the key head left zero, the query head learnt through it; the DiT did not move
    assert torch.count_nonzero(a.dpt_k.scratch.output_conv1.weight) > 0
    assert not torch.equal(a.dpt_q.projects[0].weight, start.dpt_q.projects[0].weight)
    assert all(torch.equal(p, q) for p, q in zip(a.backbone.parameters(), start.backbone.parameters()))
    loaded_a, loaded_b = (DAFlow.load(tmp_path / run / "model").eval() for run in ("a", "b"))
    x, y = _frames(64, 72)
    with torch.no_grad():
        fa, fb = loaded_a.refine_pairs(x, y), loaded_b.refine_pairs(x, y)
    assert torch.equal(fa, fb)  # an interrupted run ends where the uninterrupted one does
    import json

    from daflow.recipe.bundle import bundle_refiner

    folder = bundle_refiner(tmp_path / "a", tmp_path / "weights", command="test")
    assert folder.name == "daflow-small" and (folder / "transformer").is_dir() and (folder / "vae").is_dir()
    record = json.loads((folder / "PROVENANCE.json").read_text())
    assert record["command"] == "test" and record["training"]["hybrid"] == info
    with torch.no_grad():
        assert torch.equal(DAFlow.load(folder).eval().refine_pairs(x, y), fa)
    with pytest.raises(ValueError, match="hybrid"):  # another backbone is another run
        train_refiner(tmp_path / "m", tmp_path / "b", cfg, **{**kw, "hybrid": fresh(), "hybrid_info": {"x": 1}})
    with pytest.raises(ValueError, match="refiner=True"):
        train_refiner(tmp_path / "m", tmp_path / "c", cfg, hybrid=DAFlow("tiny"), progress=False)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--random-dit"], "need --daflow"),
        (["--dit4sr", "x"], "need --daflow"),
        (["--daflow", "tiny"], "--daflow must name a DA-Flow preset built on the refiner (small)"),
        (["--daflow", "small", "--dit4sr", "x"], "give --dit4sr and --vae together"),
    ],
)
def test_train_refine_daflow_options_are_checked(tmp_path, capsys, extra, message):
    from daflow.cli import main

    assert main(["train", "refine", "-o", str(tmp_path / "r"), "--no-progress", *extra]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_saved_small_model_loads_by_folder_with_the_refiners_iterations(backbone, tmp_path):
    import numpy as np

    import daflow

    DAFlow.from_refiner("small", backbone, REFINER_WEIGHTS).save(tmp_path / "small")
    model = daflow.load_model(tmp_path / "small")
    assert model.name == "daflow" and model.iters is None and "the refiner's iterations" in model.description
    assert model.chunk == 2  # the DiT sees one pair at a time
    a, b = _frames(64, 72)
    frames = torch.stack([a[0], b[0], a[0]]).permute(0, 2, 3, 1).round().clamp(0, 255).to(torch.uint8).numpy()
    # the same flows; to rounding only, as the chunk batches its two pairs where the pairwise model runs them singly
    np.testing.assert_allclose(model(frames), daflow.load_model("dis-raft")(frames), rtol=0, atol=1e-5)


def test_the_random_dit_control_keeps_the_shape_and_the_surgery(backbone):
    from daflow.train.refine import hybrid_refiner

    model, record = hybrid_refiner("small", REFINER_WEIGHTS, random_dit=True, seed=3)
    assert record["random_dit"] and record["preset"] == "small" and "restorer-tiny" in record["backbone"]
    mine, shipped = dict(model.backbone.transformer.named_parameters()), dict(backbone.transformer.named_parameters())
    assert mine.keys() == shipped.keys() and all(mine[k].shape == shipped[k].shape for k in mine)
    assert not torch.equal(mine["pos_embed.proj.weight"], shipped["pos_embed.proj.weight"])
    assert not any(p.requires_grad for p in model.backbone.parameters())
    a, b = _frames(64, 72)
    with torch.no_grad():  # still the refiner before training, whatever the DiT
        assert torch.equal(model.refine_pairs(a, b), dis_raft_estimator()(a, b))


def test_the_bundled_daflow_small_loads_by_name_with_its_provenance():
    import daflow

    model = daflow.load_model("daflow-small")
    assert model.name == "daflow-small" and model.chunk == 2 and model.iters is None
    assert model.module.config == DAFLOW_PRESETS["small"]
    record = bundled.provenance(bundled.BUNDLE_DIR / bundled.DAFLOW_SMALL)
    assert record["training"]["hybrid"]["preset"] == "small" and record["training"]["init"].endswith("raft.safetensors")
    a, b = _frames(64, 72)
    frames = torch.stack([a[0], b[0]]).permute(0, 2, 3, 1).round().clamp(0, 255).to(torch.uint8).numpy()
    flow, ref = model(frames), daflow.load_model("dis-raft")(frames)
    assert flow.shape == ref.shape == (1, 64, 72, 2) and abs(flow - ref).max() > 1e-3  # trained: no longer the refiner
    with pytest.raises(ValueError, match="random weights do not apply"):
        daflow.load_model("daflow-small", random_init=True)
