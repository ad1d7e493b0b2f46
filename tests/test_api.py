"""``daflow.load_model``: one call convention for every flow model (names, published files, trained folders)."""

import importlib.util

import numpy as np
import pytest
import torch

import daflow
from daflow.models.catalog import MODELS

FRAMES = np.random.default_rng(0).integers(0, 256, (4, 64, 80, 3), dtype=np.uint8)
BIG = np.random.default_rng(1).integers(0, 256, (3, 128, 128, 3), dtype=np.uint8)  # SEA-RAFT needs 128 px


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_name_loads_and_returns_all_pair_flows(name):
    if name.startswith("flowseek") and importlib.util.find_spec("ptlflow") is None:
        pytest.skip("FlowSeek needs the optional [baselines] extra (ptlflow)")
    model = daflow.load_model(name, random_init=MODELS[name].needs_weights, iters=2)
    assert model.chunk == MODELS[name].chunk
    frames = BIG if name.startswith(("sea-raft", "flowseek")) else FRAMES
    flows = model(frames)
    assert isinstance(flows, np.ndarray) and flows.dtype == np.float32
    assert flows.shape == (len(frames) - 1, *frames.shape[1:3], 2)
    assert np.isfinite(flows).all()


def test_torch_in_torch_out_and_same_flows():
    model = daflow.load_model("dis")
    out = model(torch.from_numpy(FRAMES))
    assert isinstance(out, torch.Tensor) and out.shape == (3, 64, 80, 2)
    np.testing.assert_allclose(out.numpy(), model(FRAMES))


def test_published_files_and_trained_folders_are_recognised(tmp_path):
    from safetensors.torch import save_file

    from daflow.api import detect_checkpoint
    from daflow.models.raft import RAFT
    from daflow.models.sea_raft import SEARAFT, get_sea_raft_config
    from daflow.train.raft import save_raft
    from daflow.train.refine import init_refiner

    torch.save({f"module.{k}": v for k, v in RAFT().state_dict().items()}, tmp_path / "raft-things.pth")
    save_file(RAFT(small=True).state_dict(), str(tmp_path / "small.safetensors"))
    torch.save(SEARAFT(get_sea_raft_config("sea-raft-s")).state_dict(), tmp_path / "s.pth")
    torch.save(SEARAFT(get_sea_raft_config("sea-raft-m")).state_dict(), tmp_path / "m.pth")
    save_raft(init_refiner(None), tmp_path / "refiner")
    assert detect_checkpoint(tmp_path / "raft-things.pth") == "raft"
    assert detect_checkpoint(tmp_path / "small.safetensors") == "raft-small"
    assert detect_checkpoint(tmp_path / "s.pth") == "sea-raft-s"
    assert detect_checkpoint(tmp_path / "m.pth") == "sea-raft-m"
    assert daflow.load_model(tmp_path / "refiner").name == "dis-raft"
    model = daflow.load_model(tmp_path / "raft-things.pth", iters=1)
    assert model.name == "raft" and model(FRAMES).shape == (3, 64, 80, 2)


def test_bad_names_and_inputs_are_refused(tmp_path):
    with pytest.raises(ValueError, match="neither a model name"):
        daflow.load_model("nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not a model folder"):
        daflow.load_model(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="daflow needs its weights"):
        daflow.load_model("daflow")
    model = daflow.load_model("dis")
    with pytest.raises(ValueError, match="F >= 2"):
        model(FRAMES[:1])
    with pytest.raises(ValueError, match="uint8"):
        model(FRAMES.astype(np.float32))


def test_evaluate_returns_typed_results_for_pairwise_models_and_daflow():
    spec = "synthetic:default?n=2&size=64x64"
    (dis,) = daflow.evaluate("dis", spec)
    assert dis.dataset.startswith("synthetic") and dis.pairs >= 2 and dis.epe > 0
    assert 0 <= dis.px5 <= dis.px3 <= dis.px1 <= 100
    (zero,) = daflow.evaluate(daflow.load_model("farneback"), spec)
    assert zero.to_dict()["spec"] == dis.spec
    (tiny,) = daflow.evaluate("daflow-tiny", spec, max_samples=1)
    assert tiny.pairs == 2  # one 3-frame window: both of its pairs
