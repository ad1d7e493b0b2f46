"""``daflow train recipe paper --dry-run``: every missing input named, and with stand-ins a full plan."""

import numpy as np

from daflow.cli import main
from daflow.files import write_image


def _stand_ins(root):
    for k in range(3):
        write_image(root / "youhq" / "animal" / "clip0" / f"{k:04d}.png", np.zeros((32, 32, 3), np.uint8))
    for folder, name in (
        ("dit4sr_q/transformer", "diffusion_pytorch_model.safetensors"),
        ("sd35/vae", "diffusion_pytorch_model.safetensors"),
        ("null", "NULL_prompt_embeds.pt"),
        ("null", "NULL_pooled_prompt_embeds.pt"),
        (".", "raft-things.pth"),
        (".", "Tartan-C-T-TSKH-spring540x960-M.pth"),
    ):
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / name).write_bytes(b"stand-in")
    (root / "MPI-Sintel").mkdir()
    return [
        "--youhq",
        str(root / "youhq"),
        "--dit4sr",
        str(root / "dit4sr_q"),
        "--vae",
        str(root / "sd35"),
        "--null-prompt",
        str(root / "null"),
        "--raft-init",
        str(root / "raft-things.pth"),
        "--teacher",
        str(root / "Tartan-C-T-TSKH-spring540x960-M.pth"),
        "--sintel",
        str(root / "MPI-Sintel"),
    ]


def test_missing_inputs_are_each_named(tmp_path, capsys):
    assert (
        main(["train", "recipe", "paper", "-o", str(tmp_path / "run"), "--dry-run", "--vae", str(tmp_path / "nowhere")])
        == 1
    )
    err = capsys.readouterr().err
    for flag in (
        "--youhq: missing",
        "--dit4sr: missing",
        f"--vae {tmp_path / 'nowhere'}: not found",
        "--null-prompt: missing",
        "--raft-init: missing",
        "--teacher: missing",
        "--sintel/--spring",
    ):
        assert flag in err, flag


def test_stand_ins_give_the_full_plan(tmp_path, capsys):
    args = _stand_ins(tmp_path)
    assert main(["train", "recipe", "paper", "-o", str(tmp_path / "run"), "--dry-run", "--gpus", "2", *args]) == 0
    out = capsys.readouterr().out
    for stage in (
        "| degrade |",
        "| degrade sintel |",
        "| pseudo-gt |",
        "| lift | gpu x 2 |",
        "| flow | gpu x 2 |",
        "| evaluate |",
    ):
        assert stage in out, stage
    assert "accelerate launch --num_processes 2 -m daflow.cli train lift --settings paper" in out
    assert "1 clips found" in out or "1 clips" in out  # the pseudo-GT cost counts the clips it was given
    assert "--shard K/N" in out and "daflow evaluate --merge part_*.json -o eval.json" in out
    assert not (tmp_path / "run").exists()  # a dry run writes nothing


def test_malformed_inputs(tmp_path, capsys):
    args = _stand_ins(tmp_path)
    (tmp_path / "null" / "NULL_pooled_prompt_embeds.pt").unlink()
    assert main(["train", "recipe", "paper", "-o", str(tmp_path / "run"), "--dry-run", *args]) == 1
    assert "expected NULL_prompt_embeds.pt and NULL_pooled_prompt_embeds.pt" in capsys.readouterr().err
