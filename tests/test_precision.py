"""The networks' compute dtype (``--dtype``): one choice for every RAFT-family model, float32 kept for the
correlations and the flow, float32 unchanged by default, and the choice recorded."""

import json

import numpy as np
import pytest
import torch

import daflow
from daflow.cli import main
from daflow.data.synthetic import SyntheticConfig, render_clip
from daflow.files import write_image
from daflow.models.precision import DTYPE_CHOICES, dtype_name, flow_dtype, resolve_dtype, set_compute_dtype
from daflow.models.raft import RAFT
from daflow.models.registry import build_flow_model
from daflow.models.sea_raft import SEARAFT, get_sea_raft_config


def test_resolve_dtype():
    assert resolve_dtype(None, "cpu") is torch.float32 and resolve_dtype("auto", "cpu") is torch.float32
    assert resolve_dtype("auto", "cuda") is torch.bfloat16  # the DiT's rule
    assert flow_dtype(None) is torch.float32 and flow_dtype("auto") is torch.float32  # the RAFT family's, everywhere
    assert flow_dtype("bfloat16") is torch.bfloat16 and flow_dtype(torch.float16) is torch.float16
    assert resolve_dtype("bfloat16", "cpu") is torch.bfloat16 and resolve_dtype(torch.float16, "cpu") is torch.float16
    assert DTYPE_CHOICES == ("auto", "float32", "bfloat16", "float16") and dtype_name(torch.bfloat16) == "bfloat16"
    with pytest.raises(ValueError, match="dtype must be one of auto, float32, bfloat16, float16, got 'fp8'"):
        resolve_dtype("fp8", "cpu")
    with pytest.raises(ValueError, match="dtype must be one of"):
        resolve_dtype(torch.int8, "cpu")


def test_set_compute_dtype_picks_the_memory_format():
    model = RAFT(small=True)
    conv = model.update_block.gru.convz.weight
    set_compute_dtype(model, "bfloat16")
    assert model.compute_dtype is torch.bfloat16 and conv.dtype is torch.float32  # weights stay float32
    assert model.update_block.gru.convz.weight.is_contiguous(memory_format=torch.channels_last)
    set_compute_dtype(model, torch.float32)
    assert model.update_block.gru.convz.weight.is_contiguous()
    with pytest.raises(TypeError, match="Linear has no compute dtype"):
        set_compute_dtype(torch.nn.Linear(2, 2), torch.bfloat16)


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    """Reduced precision moves the flow a little, not the geometry: float32 out, and a small mean difference."""
    assert a.dtype == torch.float32 and torch.isfinite(a).all()
    assert (a - b).norm(dim=1).mean() < 0.05 * b.norm(dim=1).mean() + 0.05


@pytest.mark.parametrize("small", [True, False])
def test_raft_in_bfloat16_keeps_the_correlations_and_the_flow_float32(small, monkeypatch):
    torch.manual_seed(0)
    model = RAFT(small=small).eval()
    x1, x2 = torch.rand(1, 3, 64, 64) * 255, torch.rand(1, 3, 64, 64) * 255
    with torch.no_grad():
        ref = model(x1, x2, iters=3).flow
        set_compute_dtype(model, torch.bfloat16)
        seen = []
        import daflow.models.raft as raft_module

        build = raft_module.build_corr

        def spy(f1, f2, **kw):
            seen.append((f1.dtype, f2.dtype))
            return build(f1, f2, **kw)

        monkeypatch.setattr(raft_module, "build_corr", spy)
        out = model(x1, x2, iters=3)
    assert seen == [(torch.float32, torch.float32)]
    assert out.flow_low.dtype == torch.float32
    _close(out.flow, ref)


def test_sea_raft_in_bfloat16():
    torch.manual_seed(0)
    model = SEARAFT(get_sea_raft_config("sea-raft-s")).eval()
    x1, x2 = torch.rand(1, 3, 128, 128) * 255, torch.rand(1, 3, 128, 128) * 255
    with torch.no_grad():
        ref = model(x1, x2, iters=2)
        set_compute_dtype(model, torch.bfloat16)
        out = model(x1, x2, iters=2)
    assert out.info.dtype == torch.float32
    _close(out.flow, ref.flow)


def test_the_default_model_in_bfloat16_and_float32_unchanged():
    """``dtype`` reaches the refiner; float32, the default, is the same flow to the bit as before any choice."""
    frames = render_clip(SyntheticConfig(height=64, width=64, num_frames=3), 1).frames
    base = daflow.load_model("dis-raft")
    assert base.module.compute_dtype is torch.float32
    fp32 = np.asarray(daflow.load_model("dis-raft", dtype="float32")(frames))
    assert np.array_equal(fp32, np.asarray(base(frames)))
    bf16 = daflow.load_model("dis-raft", dtype="bfloat16")
    assert bf16.module.compute_dtype is torch.bfloat16 and "bfloat16" in bf16.description
    out = np.asarray(bf16(frames))
    assert out.dtype == np.float32 and np.linalg.norm(out - fp32, axis=-1).mean() < 0.1
    for name in ("raft-small", "raft", "sea-raft-s"):
        assert daflow.load_model(name, random_init=True, dtype="bfloat16").module.compute_dtype is torch.bfloat16
    assert daflow.load_model("dis", dtype="bfloat16").module is None  # no network: nothing to cast
    with pytest.raises(ValueError, match="flowseek-t runs in float32 only"):
        build_flow_model("flowseek-t", random_init=True, dtype="bfloat16")


def test_estimate_records_the_dtype(tmp_path, capsys):
    frames = tmp_path / "frames"
    for i, frame in enumerate(render_clip(SyntheticConfig(height=64, width=64, num_frames=2), 0).frames):
        write_image(frames / f"f{i}.png", frame)
    assert main(["estimate", str(frames), "-o", str(tmp_path / "a"), "--no-progress"]) == 0
    assert json.loads((tmp_path / "a" / "estimate.json").read_text())["dtype"] == "float32"
    assert main(["estimate", str(frames), "-o", str(tmp_path / "b"), "--dtype", "bfloat16", "--no-progress"]) == 0
    record = json.loads((tmp_path / "b" / "estimate.json").read_text())
    assert record["dtype"] == "bfloat16" and "bfloat16" in record["description"]
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["estimate", str(frames), "-o", str(tmp_path / "c"), "--dtype", "fp8"])
    assert "--dtype: invalid choice: 'fp8'" in capsys.readouterr().err


def test_da_flow_flow_network_takes_the_dtype():
    frames = render_clip(SyntheticConfig(height=64, width=64, num_frames=3), 1).frames
    ref = np.asarray(daflow.load_model("daflow-tiny")(frames))
    model = daflow.load_model("daflow-tiny", dtype="bfloat16")
    assert model.module.raft.compute_dtype is torch.bfloat16
    out = np.asarray(model(frames))
    assert np.linalg.norm(out - ref, axis=-1).mean() < 0.05 * np.linalg.norm(ref, axis=-1).mean() + 0.05


def test_run_records_name_each_networks_dtype():
    from argparse import Namespace

    from daflow.cli.common import model_record

    args = Namespace(model="daflow-tiny", dtype="auto", device="cpu", random_init=False, weights=None)
    record = model_record(args)
    assert record["dtype"] == "float32" and record["dit_dtype"] == "float32"
    args = Namespace(model="raft", dtype="bfloat16", device="cpu", random_init=True, weights=None)
    record = model_record(args)
    assert record["dtype"] == "bfloat16" and "dit_dtype" not in record
