"""Tiny-recipe trainers: the stage-0 VAE and the RAFT / RAFT* baselines (few steps, resume, files)."""

import dataclasses

import pytest
import torch

from daflow.api import load_model
from daflow.models.vae import encode, load_vae
from daflow.train.data import TrainingClips, build_clip_source
from daflow.train.raft import RAFT_PRESETS, train_raft
from daflow.train.vae import VAETrainConfig, train_vae

DATA = "synthetic:default?n=8&size=64x64"


def test_vae_trains_resumes_exactly_and_calibrates_its_latents(tmp_path):
    source = build_clip_source(DATA, num_frames=2)
    config = VAETrainConfig(steps=6, batch=1, crop=(32, 32), save_every=3, calibration_clips=4)
    full = train_vae(source, tmp_path / "a", config, progress=False)
    assert full["steps"] == 6 and full["trainable_parameters"] > 0
    train_vae(source, tmp_path / "b", config, progress=False, stop_at=3)
    assert not (tmp_path / "b" / "vae").exists()
    resumed = train_vae(source, tmp_path / "b", config, progress=False)
    assert resumed["start"] == 3
    a, b = load_vae(tmp_path / "a" / "vae"), load_vae(tmp_path / "b" / "vae")
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name
    assert a.config.scaling_factor == b.config.scaling_factor != 1.5305
    items = TrainingClips(source, crop=(32, 32), seed=0)
    z = torch.cat([encode(a, items[2**60 + i]["hq"]) for i in range(4)])
    assert abs(float(z.mean())) < 0.1 and abs(float(z.std()) - 1.0) < 0.1  # calibrated on these very clips


def test_raft_baselines_train_resume_and_load_by_name(tmp_path):
    source = build_clip_source(DATA, num_frames=3)
    config = dataclasses.replace(RAFT_PRESETS["tiny"], steps=4, iters=2, save_every=2, inputs="hq")
    train_raft(source, tmp_path / "raft", config, progress=False)
    weights = tmp_path / "raft" / "model" / "raft.safetensors"
    assert weights.is_file()
    # RAFT*: the clean model fine-tuned on LQ frames; interrupted and resumed equals uninterrupted
    star = dataclasses.replace(config, inputs="lq")
    train_raft(source, tmp_path / "s1", star, init=weights, progress=False)
    train_raft(source, tmp_path / "s2", star, init=weights, progress=False, stop_at=2)
    train_raft(source, tmp_path / "s2", star, init=weights, progress=False)
    m1 = load_model("raft-small", weights=tmp_path / "s1" / "model" / "raft.safetensors", iters=2).pairs
    m2 = load_model("raft-small", weights=tmp_path / "s2" / "model" / "raft.safetensors", iters=2).pairs
    frames = torch.rand(1, 3, 64, 64) * 255
    assert torch.equal(m1(frames, frames.flip(-1)), m2(frames, frames.flip(-1)))


def test_daflow_train_raft_cli(tmp_path, capsys):
    from daflow.cli import main

    assert (
        main(
            [
                "train",
                "raft",
                "--data",
                DATA,
                "--inputs",
                "hq",
                "--steps",
                "1",
                "--iters",
                "2",
                "--no-progress",
                "-o",
                str(tmp_path / "r"),
            ]
        )
        == 0
    )
    assert (tmp_path / "r" / "model" / "raft.safetensors").is_file()
    assert main(["train", "raft", "--data", DATA, "--crop", "40x40", "-o", str(tmp_path / "x")]) == 1
    assert "at least 64" in capsys.readouterr().err


def test_small_hybrid_surgery_reproduces_raft_small():
    from daflow.models.daflow import DAFlow
    from daflow.models.raft import RAFT

    torch.manual_seed(0)
    raft = RAFT(small=True).eval()
    model = DAFlow("tiny").eval()
    model.init_raft(raft.state_dict())
    assert model.raft.update_block.gru.convz.weight[:, 96 + 64 : 96 + 64 + 16].abs().sum() == 0
    frames = torch.rand(1, 2, 3, 64, 64) * 255
    zeros = (torch.zeros(1, 32, 8, 8), torch.zeros(1, 32, 8, 8), torch.randn(1, 16, 8, 8))
    with torch.no_grad():
        assert torch.equal(raft(frames[:, 0], frames[:, 1], iters=4).flow, model.refine(frames, zeros, iters=4).flow)


def test_the_smoke_recipe_runs_every_stage_resumes_and_bundles(tmp_path, monkeypatch, capsys):
    import json

    from daflow.cli import main
    from daflow.recipe.presets import FLOW_STAGES

    run = tmp_path / "recipe"
    assert main(["train", "recipe", "smoke", "-o", str(run), "--no-progress"]) == 0
    for stage in FLOW_STAGES:
        assert (run / stage / "done.json").is_file(), stage
    blocks = json.loads((run / "analyze" / "done.json").read_text())["blocks"]
    assert len(blocks["Lifting"]) == 4 and len(blocks["Baseline"]) == 4
    assert (run / "analyze" / "lifting" / "top_layers.png").is_file()
    for model in ("daflow", "daflow_gt", "baseline"):
        assert (run / model / "model" / "flownet.safetensors").is_file()
    assert (run / "raft_star" / "model" / "raft.safetensors").is_file()
    report = (run / "report" / "report.md").read_text()
    for row in (
        "| RAFT |",
        "| RAFT* |",
        "| DA-Flow |",
        "| DA-Flow (exact GT) |",
        "| Baseline* |",
        "| DIS |",
        "| zero flow |",
    ):
        assert row in report, row
    assert "| model | metric | 0 | 1 |" in report and "mean of 10 steps" in report
    assert "**Smoke run**" in report and "mean nothing" in report  # a smoke report says what it is
    assert main(["train", "recipe", "smoke", "-o", str(run), "--no-progress"]) == 0  # everything done: nothing reruns
    assert main(["train", "report", str(run), "--max-chunks", "1", "--no-progress"]) == 0  # the report alone
    assert "| DA-Flow |" in capsys.readouterr().out
    assert main(["train", "report", str(tmp_path / "not-a-run")]) == 1
    assert "are not finished; run `daflow train recipe` first" in capsys.readouterr().err
    assert main(["train", "recipe", "smoke", "-o", str(run), "--device", "gpu0"]) == 1
    assert "--device 'gpu0' is not a torch device" in capsys.readouterr().err
    assert main(["train", "recipe", "tiny", "-o", str(run), "--no-progress"]) == 1  # other settings: refused
    # bundling: the package's demonstration models, loaded by name, used by demo and estimate by default
    import daflow.models.bundled as bundled

    weights = tmp_path / "weights"
    assert main(["train", "recipe", "smoke", "-o", str(run), "--no-progress", "--bundle-into", str(weights)]) == 0
    provenance = json.loads((weights / "PROVENANCE.json").read_text())
    assert provenance["command"].startswith("daflow train recipe smoke") and "DA-Flow" in provenance["scores"]
    monkeypatch.setattr(bundled, "BUNDLE_DIR", weights)
    capsys.readouterr()
    assert main(["demo", "-o", str(tmp_path / "demo"), "--size", "64x64"]) == 0
    out = capsys.readouterr().out
    assert "| DA-Flow-tiny (LQ) |" in out and "| RAFT*-tiny (LQ) |" in out and "bundled demonstration model" in out
    assert (tmp_path / "demo" / "demo.png").is_file()
    for i in range(3):
        from daflow.files import write_image

        write_image(tmp_path / "frames" / f"f{i}.png", (torch.rand(64, 64, 3) * 255).to(torch.uint8).numpy())
    assert (
        main(
            [
                "estimate",
                str(tmp_path / "frames"),
                "-o",
                str(tmp_path / "est"),
                "--model",
                "daflow-tiny",
                "--step",
                "0",
                "--iters",
                "2",
                "--no-progress",
            ]
        )
        == 0
    )
    assert "bundled demonstration model" in capsys.readouterr().err
    assert len(list((tmp_path / "est" / "flow").iterdir())) == 2
    assert (
        main(["evaluate", "--model", "raft-star-tiny", "--data", "synthetic:default?n=1&size=64x64", "--no-progress"])
        == 0
    )
    assert (
        main(
            [
                "estimate",
                str(tmp_path / "frames"),
                "-o",
                str(tmp_path / "est2"),
                "--model",
                "daflow-tiny",
                "--step",
                "0",
                "--iters",
                "2",
                "--no-progress",
            ]
        )
        == 0
    )
    assert len(list((tmp_path / "est2" / "flow").iterdir())) == 2
    assert (
        main(
            [
                "estimate",
                str(tmp_path / "frames"),
                "-o",
                str(tmp_path / "est3"),
                "--model",
                "daflow-tiny",
                "--weights",
                str(run / "daflow" / "model"),
                "--no-progress",
            ]
        )
        == 1
    )  # the bundled model takes no weights
    assert "daflow-tiny is a bundled model" in capsys.readouterr().err
    pgt = json.loads((run / "pseudo_gt" / "done.json").read_text())
    assert pgt["teacher"] in ("raft", "dis") and pgt["teacher"] == min(
        pgt["clean_val_epe"], key=pgt["clean_val_epe"].get
    )
    assert "Pseudo-GT teacher:" in report


@pytest.mark.parametrize(
    "module, name",
    [
        ("daflow.train.vae", "VAETrainConfig"),
        ("daflow.train.raft", "RAFTTrainConfig"),
        ("daflow.train.flow", "FlowTrainConfig"),
        ("daflow.train.lift", "LiftConfig"),
    ],
)
def test_every_stage_config_checks_its_loop_settings(module, name):
    import importlib

    config = getattr(importlib.import_module(module), name)
    with pytest.raises(ValueError, match="mixed_precision must be auto, no, bf16 or fp16"):
        config(mixed_precision="fp8")
    with pytest.raises(ValueError, match="steps must be >= 1"):
        config(steps=0)
    with pytest.raises(ValueError, match="save_every must be >= 1"):
        config(save_every=0)


def test_a_stage_whose_inputs_are_missing_says_which(tmp_path, capsys):
    from daflow.cli import main

    assert main(["train", "recipe", "smoke", "-o", str(tmp_path / "run"), "--only", "daflow", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "stage daflow needs data, vae, lift, raft, pseudo_gt, analyze first" in err
