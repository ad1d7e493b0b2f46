"""Dataset specs, the evaluation loop, `daflow evaluate`, the model registry and `daflow pseudo-gt`."""

import json

import numpy as np
import pytest
import torch

from daflow.api import load_model
from daflow.cli import main
from daflow.data.specs import DatasetSpec, build_eval_sets, parse_dataset_spec
from daflow.data.video import write_video
from daflow.eval.benchmark import add_sintel_mean, evaluate_model, markdown_table, paper_row
from daflow.files import write_image
from daflow.flow.io import read_flow
from daflow.models.registry import MissingWeightsError
from daflow.train.pseudo_gt import write_pseudo_gt
from test_datasets import make_sintel, make_spring, make_tartanair
from test_raft import official_state_dict


def test_spec_parsing_and_errors():
    s = parse_dataset_spec("spring:/data/spring?scenes=val&gt=full")
    assert s == DatasetSpec("spring", "/data/spring", {"scenes": "val", "gt": "full"})
    assert str(s) == "spring:/data/spring?scenes=val&gt=full"
    assert parse_dataset_spec("Sintel-Final:C:/x/Sintel").target == "C:/x/Sintel"  # only the first colon splits
    with pytest.raises(ValueError, match="expected KIND:TARGET"):
        parse_dataset_spec("/data/Sintel")
    with pytest.raises(ValueError, match="unknown dataset kind 'kitti'"):
        parse_dataset_spec("kitti:/data")
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['pass'\] for sintel-final"):
        parse_dataset_spec("sintel-final:/d?pass=clean")
    with pytest.raises(ValueError, match="size must be HxW"):
        build_eval_sets("synthetic:tiny?size=big")
    with pytest.raises(ValueError, match="unknown synthetic preset"):
        build_eval_sets("synthetic:huge")
    with pytest.raises(ValueError, match="unknown degradation preset"):
        build_eval_sets("synthetic:tiny?degrade=blurry")


def test_eval_sets_for_every_benchmark_layout(tmp_path):
    make_sintel(tmp_path / "sintel")
    sets = build_eval_sets(f"sintel:{tmp_path / 'sintel'}")
    assert [e.label for e in sets] == ["sintel-clean", "sintel-final"] and len(sets[0].dataset) == 6
    assert len(build_eval_sets(f"sintel-final:{tmp_path / 'sintel'}?scenes=alley_1")[0].dataset) == 3
    make_spring(tmp_path / "spring", scenes=("0001", "0045", "0047"))
    (full,) = build_eval_sets(f"spring:{tmp_path / 'spring'}?scenes=val&gt=full")
    assert full.spring_min and len(full.dataset) == 4  # scenes 0045 and 0047, 2 pairs each
    assert full.dataset[0].flow.shape[-3:-1] == (8, 12)  # 4K-style candidates kept for the min over 2x2
    make_tartanair(tmp_path / "tartan")
    (tartan,) = build_eval_sets(f"tartanair:{tmp_path / 'tartan'}?every=1")
    assert len(tartan.dataset) == 6  # the two validation trajectories, every pair
    (syn,) = build_eval_sets("synthetic:tiny?n=2&degrade=mild&size=64x80")
    assert syn.label == "synthetic-tiny-mild" and syn.dataset[1].frames.shape == (2, 64, 80, 3)
    clean = build_eval_sets("synthetic:tiny?n=2&size=64x80")[0].dataset[1]
    assert not np.array_equal(clean.frames, syn.dataset[1].frames)
    np.testing.assert_array_equal(clean.flow, syn.dataset[1].flow)  # degradation keeps the ground truth
    np.testing.assert_array_equal(syn.dataset[1].frames, syn.dataset[1].frames)  # deterministic


def test_evaluate_model_oracle_zero_and_tables(tmp_path):
    make_sintel(tmp_path / "sintel")
    sets = build_eval_sets(f"sintel:{tmp_path / 'sintel'}")

    def oracle(a, b):  # the fake tree's flow of pair i is constant i; frame values encode i
        i = float(a[0, 0, 0, 0] % 100)
        return torch.full((1, 2, *a.shape[-2:]), i)

    res = [evaluate_model(oracle, e, progress=False) for e in sets]
    assert all(r["metrics"]["epe"] == 0 and r["pairs"] == 6 for r in res)
    zero = evaluate_model(lambda a, b: torch.zeros(1, 2, *a.shape[-2:]), sets[0], progress=False, max_samples=3)
    assert zero["pairs"] == 3 and zero["metrics"]["epe"] == pytest.approx(np.sqrt(2) * (1 + 2 + 3) / 3)
    assert zero["metrics"]["1px"] == 100.0
    rows = add_sintel_mean(res)
    assert rows[-1]["label"] == "sintel (mean of passes)" and rows[-1]["metrics"]["epe"] == 0
    table = markdown_table({r["label"]: r["metrics"] for r in rows})
    assert "| sintel-clean | 0.000 | 0.00 | 0.00 | 0.00 |" in table
    assert paper_row("raft", res).splitlines()[0].count("EPE") == 2


def test_registry_needs_weights_and_loads_official_files(tmp_path):
    with pytest.raises(MissingWeightsError, match=r"raft-things.pth.*--random-init"):
        load_model("raft")
    with pytest.raises(ValueError, match="neither a model name"):
        load_model("pwc")
    torch.save(official_state_dict(), tmp_path / "raft-things.pth")
    raft = load_model("raft", weights=tmp_path / "raft-things.pth", iters=2).pairs
    a, b = torch.rand(1, 3, 70, 90) * 255, torch.rand(1, 3, 70, 90) * 255  # padded inside, cropped back
    assert raft(a, b).shape == (1, 2, 70, 90) and not raft.random_init
    rnd = load_model("sea-raft-s", random_init=True, iters=1, scale=0).pairs
    assert rnd.random_init and "random weights" in rnd.description
    dis = load_model("dis").pairs
    assert dis(a, b).shape == (1, 2, 70, 90)


def test_cli_evaluate_writes_json_and_fails_clearly(tmp_path, capsys):
    out = tmp_path / "res.json"
    rc = main(
        [
            "evaluate",
            "--model",
            "dis",
            "--data",
            "synthetic:tiny?n=2&size=64x64",
            "--data",
            "synthetic:tiny?n=2&size=64x64&degrade=realbasicvsr",
            "-o",
            str(out),
            "--no-progress",
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "| synthetic-tiny |" in text and "| synthetic-tiny-realbasicvsr |" in text
    record = json.loads(out.read_text())
    assert record["model"] == "dis" and len(record["results"]) == 2
    assert record["results"][1]["metrics"]["epe"] > record["results"][0]["metrics"]["epe"]  # degradation hurts
    torch.save(official_state_dict(), tmp_path / "raft-things.pth")
    assert (
        main(
            [
                "evaluate",
                "--model",
                "raft",
                "--weights",
                str(tmp_path / "raft-things.pth"),
                "--iters",
                "1",
                "--data",
                "synthetic:tiny?n=1&size=64x64",
                "--no-progress",
            ]
        )
        == 0
    )
    assert main(["evaluate", "--model", "raft", "--data", "synthetic:tiny?n=1"]) == 1
    assert "raft needs its weights" in capsys.readouterr().err
    assert main(["evaluate", "--model", "dis", "--data", f"sintel:{tmp_path / 'nowhere'}"]) == 1
    assert "nowhere" in capsys.readouterr().err


def _clip_folder(root, n=3, h=128, w=144, seed=0):
    rng = np.random.default_rng(seed)
    base = (rng.random((h + 8, w + 8, 3)) * 255).astype(np.uint8)
    for i in range(n):
        write_image(root / f"img_{i:03d}.png", base[i : i + h, 2 * i : 2 * i + w])
    return root


@pytest.mark.parametrize(
    "model,extra", [("dis", []), ("daflow-tiny", ["--step", "0,1", "--denoise-steps", "2", "--iters", "1"])]
)
def test_cli_evaluate_shards_merge_into_one_run(tmp_path, capsys, model, extra):
    data = ["--data", "synthetic:tiny?n=3&size=64x64&degrade=realbasicvsr"]
    if model == "dis":
        data += ["--data", "synthetic:tiny?n=2&size=64x64"]
    base = ["evaluate", "--model", model, *data, *extra, "--no-progress"]
    assert main([*base, "-o", str(tmp_path / "one.json")]) == 0
    for k in range(2):
        assert main([*base, "--shard", f"{k}/2", "-o", str(tmp_path / f"part{k}.json")]) == 0
    parts = [str(tmp_path / f"part{k}.json") for k in (1, 0)]  # any order
    assert main(["evaluate", "--merge", *parts, "-o", str(tmp_path / "merged.json")]) == 0
    one, merged = (json.loads((tmp_path / n).read_text()) for n in ("one.json", "merged.json"))
    strip = ("seconds", "seconds_per_pair")
    for a, b in zip(one["results"], merged["results"], strict=True):
        assert {k: v for k, v in a.items() if k not in strip} == {k: v for k, v in b.items() if k not in strip}
    assert {k: v for k, v in one.items() if k != "results"} == {k: v for k, v in merged.items() if k != "results"}
    # a missing or doubled shard, or parts of different runs, are refused in one line
    capsys.readouterr()
    assert main(["evaluate", "--merge", parts[0], "-o", str(tmp_path / "x.json")]) == 1
    assert "shards 0..N-1" in capsys.readouterr().err
    assert main(["evaluate", "--model", model, *data, "--shard", "0/2"]) == 1
    assert "-o PART.json" in capsys.readouterr().err


def test_pseudo_gt_labels_every_pair_and_resumes(tmp_path):
    clips = tmp_path / "clips"
    _clip_folder(clips / "cat" / "clip1", n=3)
    _clip_folder(clips / "cat" / "clip2", n=2, w=160, seed=1)
    video = np.stack([np.full((128, 144, 3), 10 * i, np.uint8) for i in range(3)])
    write_video(clips / "videos" / "v1.mp4", video)
    teacher = load_model("sea-raft-s", random_init=True, iters=1, scale=0).pairs
    out = tmp_path / "labels"
    report = write_pseudo_gt(clips, out, teacher, batch_size=2, progress=False, settings={"iters": 1, "scale": 0})
    assert (report.clips, report.pairs, report.written) == (3, 2 + 1 + 2, 5)
    names = sorted(str(p.relative_to(out)) for p in out.rglob("*.flo"))
    assert names == [
        "cat/clip1/img_000.flo",
        "cat/clip1/img_001.flo",
        "cat/clip2/img_000.flo",
        "videos/v1/000000.flo",
        "videos/v1/000001.flo",
    ]
    # a label equals the teacher's flow on that pair alone (batching does not change it)
    from daflow.files import read_image

    a, b = (
        torch.from_numpy(read_image(clips / "cat" / "clip1" / f"img_00{i}.png")).permute(2, 0, 1)[None].float()
        for i in (1, 2)
    )
    flow, _ = read_flow(out / "cat" / "clip1" / "img_001.flo")
    np.testing.assert_allclose(flow, teacher(a, b)[0].permute(1, 2, 0).numpy(), atol=1e-4)
    before = (out / "cat" / "clip2" / "img_000.flo").read_bytes()
    (out / "cat" / "clip2" / "img_000.flo").unlink()
    again = write_pseudo_gt(clips, out, teacher, progress=False, settings={"iters": 1, "scale": 0})
    assert (again.written, again.skipped) == (1, 4)
    assert (out / "cat" / "clip2" / "img_000.flo").read_bytes() == before
    with pytest.raises(ValueError, match="pseudo-GT labels made with other settings"):
        write_pseudo_gt(clips, out, teacher, progress=False, settings={"iters": 20, "scale": 0})
    manifest = json.loads((out / "pseudo_gt.json").read_text())
    assert manifest["teacher"] == "sea-raft-s" and manifest["random_init"] is True


def test_pseudo_gt_shards_write_the_labels_of_one_run(tmp_path):
    from daflow.shard import Shard

    clips = tmp_path / "clips"
    for i in range(3):
        _clip_folder(clips / f"c{i}", n=4 - i % 2, seed=i)
    teacher = load_model("sea-raft-s", random_init=True, iters=1, scale=0).pairs
    write_pseudo_gt(clips, tmp_path / "one", teacher, batch_size=2, progress=False)
    reports = [
        write_pseudo_gt(clips, tmp_path / "shared", teacher, batch_size=2, progress=False, shard=Shard(k, 2))
        for k in (1, 0)
    ]
    assert [r.clips for r in reports] == [1, 2] and sum(r.pairs for r in reports) == 3 + 2 + 3

    def files(root):
        return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*.flo")}

    assert files(tmp_path / "shared") == files(tmp_path / "one") and len(files(tmp_path / "one")) == 8


def test_cli_pseudo_gt_single_folder_and_missing_weights(tmp_path, capsys):
    clip = _clip_folder(tmp_path / "clip", n=2)
    assert (
        main(
            [
                "pseudo-gt",
                str(clip),
                "-o",
                str(tmp_path / "out"),
                "--teacher",
                "sea-raft-s",
                "--random-init",
                "--iters",
                "1",
                "--scale",
                "0",
                "--format",
                "npy",
                "--no-progress",
            ]
        )
        == 0
    )
    assert (tmp_path / "out" / "img_000.npy").is_file()
    assert main(["pseudo-gt", str(clip), "-o", str(tmp_path / "out2")]) == 1
    err = capsys.readouterr().err
    assert "sea-raft-m needs its weights" in err and "Tartan-C-T-TSKH-spring540x960-M" in err
    assert main(["pseudo-gt", str(tmp_path / "missing"), "-o", str(tmp_path / "o"), "--teacher", "dis"]) == 1
    assert "clips not found" in capsys.readouterr().err


def test_worker_processes_give_the_same_result():
    (eval_set,) = build_eval_sets("synthetic:tiny?n=2&size=64x64&degrade=mild")
    dis = load_model("dis")
    serial = evaluate_model(dis, eval_set, progress=False)
    pooled = evaluate_model(dis, eval_set, progress=False, workers=1)
    assert pooled["metrics"] == serial["metrics"] and pooled["pairs"] == 2
