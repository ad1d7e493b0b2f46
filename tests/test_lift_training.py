"""Stage 1 (paper §4.2, Eq. 6): training data, the flow-matching loss, trainable selection, checkpoints and exact
resume, and `daflow train lift` on the tiny preset."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from daflow.cli import main
from daflow.files import write_image
from daflow.models.backbone import DiffusionBackbone
from daflow.models.dit4sr import DiT4SRTransformer, load_dit4sr
from daflow.models.sampler import training_sigmas
from daflow.train.checkpoint import list_checkpoints, optimizer_from_tensors, optimizer_to_tensors, read_state
from daflow.train.data import StepSampler, TrainingClips, build_clip_source
from daflow.train.lift import (
    LIFT_PRESETS,
    LiftConfig,
    flow_matching_loss,
    mask_lq_tokens,
    sample_sigmas,
    train_lift,
    trainable_parameters,
    validation_loss,
)

TINY = dataclasses.replace(LIFT_PRESETS["tiny"], crop=(32, 48), batch=2, save_every=3)
DATA = "synthetic:tiny?n=6&size=48x64"


def test_training_clips_are_a_function_of_seed_and_counter():
    source = build_clip_source(DATA, num_frames=3)
    ds = TrainingClips(source, crop=(32, 48), seed=0, require=("hq", "lq"))
    a, b = ds[5], ds[5]
    assert a["hq"].shape == (3, 3, 32, 48) and a["lq"].shape == (3, 3, 32, 48) and a["flow"].shape == (2, 2, 32, 48)
    for k in a:
        assert torch.equal(a[k], b[k])
    assert not torch.equal(a["lq"], a["hq"])  # degraded on the fly
    # every clip once per epoch, in a seeded order
    assert sorted(ds.clip_index(i) for i in range(6)) == list(range(6))
    assert [ds.clip_index(i) for i in range(6)] != [ds.clip_index(i) for i in range(6, 12)]
    clean = TrainingClips(build_clip_source(DATA, num_frames=3, degrade="none"), crop=(32, 48))
    with pytest.raises(ValueError, match=r"needs \['lq'\]"):
        TrainingClips(clean.source, require=("hq", "lq"))
    with pytest.raises(ValueError, match="training reads"):
        build_clip_source("sintel:/x", num_frames=3)
    sampler = iter(StepSampler(2, start_step=3, rank=1, world=2))
    assert next(sampler) == [14, 15] and next(sampler) == [18, 19]


def test_youhq_source_pairs_hq_clips_with_their_mirror(tmp_path):
    rng = np.random.default_rng(0)
    for root in ("hq", "lq"):
        for i in range(4):
            write_image(
                tmp_path / root / "cat" / "c1" / f"{'frame_' if root == 'lq' else ''}{i:04d}.png",
                rng.integers(0, 255, (32, 32, 3), dtype=np.uint8),
            )
    source = build_clip_source(f"youhq:{tmp_path / 'hq'}?lq={tmp_path / 'lq'}", num_frames=3)
    item = TrainingClips(source, seed=0, require=("hq", "lq"))[0]
    assert item["hq"].shape == item["lq"].shape == (3, 3, 32, 32) and "flow" not in item
    (tmp_path / "lq" / "cat" / "c1" / "frame_0003.png").unlink()
    with pytest.raises(FileNotFoundError, match="same frame counts"):
        build_clip_source(f"youhq:{tmp_path / 'hq'}?lq={tmp_path / 'lq'}", num_frames=3)


def test_sigma_sampling_and_the_two_losses_agree_up_to_sigma_squared():
    g = torch.Generator().manual_seed(0)
    s = sample_sigmas(20000, g)
    allowed = training_sigmas()
    assert torch.isin(s, allowed).all() and 0.3 < float(s.median()) < 1.0  # shift 3 pushes sigma up
    torch.manual_seed(0)
    model = DiT4SRTransformer.from_config("tiny")
    z0, lq, noise = torch.randn(3, 16, 4, 4), torch.randn(3, 16, 4, 4), torch.randn(3, 16, 4, 4)
    text, pooled = torch.zeros(1, 5, 32), torch.zeros(1, 16)
    sigma = torch.tensor([0.4])
    x0 = flow_matching_loss(model, z0, lq, text, pooled, sigma, noise, num_frames=3, loss="x0")
    vel = flow_matching_loss(model, z0, lq, text, pooled, sigma, noise, num_frames=3, loss="velocity")
    torch.testing.assert_close(x0, 0.16 * vel)


def test_trainable_selection():
    model = DiT4SRTransformer.from_config("tiny")
    control = dict(trainable_parameters(model, "control"))
    assert control and all("control" in n for n in control)
    assert "transformer_blocks.0.ff.control_conv.weight" in control
    assert sum(p.requires_grad for p in model.parameters()) == len(control)
    attention = dict(trainable_parameters(model, "attention"))
    assert "transformer_blocks.1.attn2.to_q.weight" in attention and "pos_embed.proj.weight" not in attention
    assert len(dict(trainable_parameters(model, "all"))) == len(list(model.parameters()))


def test_optimizer_state_round_trips_through_tensors():
    p = torch.nn.Parameter(torch.randn(3))
    opt = torch.optim.AdamW([p], lr=0.1)
    p.grad = torch.ones(3)
    opt.step()
    tensors, meta = optimizer_to_tensors(opt)
    json.dumps(meta)
    q = torch.nn.Parameter(p.detach().clone())
    opt2 = torch.optim.AdamW([q], lr=0.5)
    optimizer_from_tensors(opt2, tensors, meta)
    for a, b in ((p, opt), (q, opt2)):
        a.grad = torch.full((3,), 0.5)
        b.step()
    torch.testing.assert_close(p, q)


def test_stage1_loss_goes_down_on_tiny_synthetic_clips(tmp_path):
    backbone = DiffusionBackbone.from_preset("tiny", seed=0)
    source = build_clip_source(DATA, num_frames=3)
    config = dataclasses.replace(TINY, steps=40, save_every=40, lr=2e-3)
    ds = TrainingClips(source, crop=config.crop, seed=config.seed, require=("hq", "lq"))
    before = validation_loss(backbone, ds, config)
    summary = train_lift(backbone, source, tmp_path / "run", config, progress=False)
    after = validation_loss(backbone, ds, config)
    assert summary["steps"] == 40
    assert after < 0.85 * before, (before, after)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log[-1] == {"step": 40, "val_loss": pytest.approx(after)}


def test_cross_frame_completion_masks_whole_tokens_per_frame():
    lq = torch.randn(6, 16, 8, 12) + 3.0  # no entry is zero by chance
    g = torch.Generator().manual_seed(0)
    out = mask_lq_tokens(lq, 0.75, g)
    masked = out == 0
    # whole 2x2 latent patches (tokens), every channel at once, the rest untouched
    tokens = masked.view(6, 16, 4, 2, 6, 2)
    assert bool((tokens.all(dim=(1, 3, 5)) == tokens.any(dim=(1, 3, 5))).all())
    assert torch.equal(out[~masked], lq[~masked])
    shares = masked[:, 0].float().mean(dim=(1, 2))
    assert float(shares.max()) <= 0.95 and len(set(shares.tolist())) > 1  # each frame its own share
    again = mask_lq_tokens(lq, 0.75, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)  # a function of the step's generator (exact resume)
    assert torch.equal(mask_lq_tokens(lq, 0.0, g), lq)
    with pytest.raises(ValueError, match="lq_mask"):
        LiftConfig(lq_mask=1.0)


def test_stage1_with_cross_frame_completion_trains_and_records_it(tmp_path):
    source = build_clip_source(DATA, num_frames=3)
    config = dataclasses.replace(TINY, steps=2, lq_mask=0.5)
    summary = train_lift(DiffusionBackbone.from_preset("tiny", seed=0), source, tmp_path / "m", config, progress=False)
    assert summary["steps"] == 2
    assert json.loads((tmp_path / "m" / "train_lift.json").read_text())["lq_mask"] == 0.5
    with pytest.raises(ValueError, match="lq_mask"):  # a resume with another share is refused
        train_lift(
            DiffusionBackbone.from_preset("tiny"),
            source,
            tmp_path / "m",
            dataclasses.replace(config, steps=3, lq_mask=0.25),
            progress=False,
        )


def test_stage1_resume_continues_exactly(tmp_path):
    source = build_clip_source(DATA, num_frames=3)
    straight = DiffusionBackbone.from_preset("tiny", seed=0)
    train_lift(straight, source, tmp_path / "a", dataclasses.replace(TINY, steps=6), progress=False)
    first = DiffusionBackbone.from_preset("tiny", seed=0)
    train_lift(first, source, tmp_path / "b", dataclasses.replace(TINY, steps=3), progress=False)
    resumed = DiffusionBackbone.from_preset("tiny", seed=0)  # fresh weights: the checkpoint must restore them
    summary = train_lift(resumed, source, tmp_path / "b", dataclasses.replace(TINY, steps=6), progress=False)
    assert summary["start"] == 3
    for (name, a), b in zip(straight.transformer.state_dict().items(), resumed.transformer.state_dict().values()):
        assert torch.equal(a, b), name
    assert [p.name for p in list_checkpoints(tmp_path / "b")] == ["step_0000003", "step_0000006"]
    step, config, *_ = read_state(list_checkpoints(tmp_path / "b")[-1])
    assert step == 6 and config["trainable"] == "all"
    saved = load_dit4sr(tmp_path / "b" / "transformer")
    assert torch.equal(saved.state_dict()["proj_out.weight"], resumed.transformer.state_dict()["proj_out.weight"])
    with pytest.raises(ValueError, match="lr: saved"):
        train_lift(
            DiffusionBackbone.from_preset("tiny"),
            source,
            tmp_path / "b",
            dataclasses.replace(TINY, steps=9, lr=1.0),
            progress=False,
        )


def test_daflow_train_lift_cli(tmp_path, capsys):
    out = tmp_path / "run"
    args = [
        "train",
        "lift",
        "--preset",
        "tiny",
        "--random-init",
        "--data",
        DATA,
        "--crop",
        "32x32",
        "--steps",
        "2",
        "--save-every",
        "1",
        "--lq-mask",
        "0.25",
        "--no-progress",
        "-o",
        str(out),
    ]
    assert main(args) == 0
    assert "steps 0 -> 2" in capsys.readouterr().out
    assert json.loads((out / "train_lift.json").read_text())["lq_mask"] == 0.25
    for name in (
        "transformer/config.json",
        "transformer/diffusion_pytorch_model.safetensors",
        "vae/config.json",
        "train_lift.json",
        "log.jsonl",
    ):
        assert (out / name).is_file(), name
    # the trained parts load back as a backbone, e.g. for daflow analyze
    DiffusionBackbone.from_pretrained(out / "transformer", out / "vae")
    assert (
        main(
            [
                "analyze",
                "--data",
                "synthetic:tiny?n=1&size=32x32",
                "--dit4sr",
                str(out / "transformer"),
                "--vae",
                str(out / "vae"),
                "--steps",
                "1",
                "--no-progress",
                "-o",
                str(tmp_path / "an"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "train",
                "lift",
                "--preset",
                "tiny",
                "--random-init",
                "--data",
                DATA,
                "--crop",
                "40x40",
                "-o",
                str(tmp_path / "x"),
            ]
        )
        == 1
    )
    assert "multiples of 16" in capsys.readouterr().err
