"""The paper-scale check, prepared to run in one go (about 10 minutes) on a single GPU machine.

Sections (each timed, each guarded: one failure is recorded and the next section still runs):

1. **stage 1** (lifting, §4.2): the paper-preset DiT4SR + SD3.5 VAE (random weights), bf16 autocast over fp32 master
   weights, gradient checkpointing, ``trainable=control``, AdamW; clips of F = 3 frames at 512²; the largest per-GPU
   batch of {8, 4, 2, 1} that fits (the paper: 8 per GPU × 4 GPUs); s/step and peak memory.
2. **stage 2** (flow network, §4.4): DA-Flow paper preset (frozen bf16 backbone, DPT heads + RAFT-large trained),
   Eq. 18 with 12 iterations on 512² 3-frame clips; batch as in 1; s/step and peak memory.
3. **estimate**: one 3-frame 1024×436 chunk (Sintel's size), 20 iterations, single-step mode (step 0) and the
   10-step mode (every step, mean flow); s/chunk and peak memory, inference in bf16.
4. **tiny recipe end to end** with ``--device cuda`` (``daflow train recipe tiny``), wall time per stage.

Rehearse on a CPU first (small sizes, the ``smoke`` recipe): ``--rehearse``. Results go to stdout (Markdown) and
``--json``; record them in BENCHMARKS.md ("Paper scale on a GPU").

    python benchmarks/gpu_check.py --json gpu_check.json [--budget 540]
    python benchmarks/gpu_check.py --rehearse           # CPU, tiny sizes: checks that every section runs
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_gb(device: torch.device) -> float | None:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # peak RSS of the process so far


def reset(device: torch.device) -> None:
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def timed_steps(step, device: torch.device, n: int) -> float:
    step()  # warm-up (allocations, autotuning)
    sync(device)
    t = time.perf_counter()
    for _ in range(n):
        step()
    sync(device)
    return (time.perf_counter() - t) / n


def is_oom(err: BaseException) -> bool:
    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in str(err).lower()


def largest_batch(make_loss, opt, batches: list[int], device: torch.device, steps: int, out: dict, what: str) -> dict:
    """Time optimisation steps at the largest of ``batches`` that fits: ``make_loss(batch)`` gives a function that
    computes one step's loss; an out-of-memory error tries the next batch size. Adds batch, s/step, peak memory (and
    the batches that did not fit) to ``out``."""
    for batch in batches:
        reset(device)
        loss_of_step = make_loss(batch)

        def step():
            loss_of_step().backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        try:
            out.update(batch=batch, s_per_step=timed_steps(step, device, steps), peak_gb=peak_gb(device))
            return out
        except Exception as err:  # noqa: BLE001 - an OOM tries the next batch size
            if not is_oom(err):
                raise
            opt.zero_grad(set_to_none=True)
            out.setdefault("oom_at_batch", []).append(batch)
    raise RuntimeError(f"{what} does not fit even at batch {batches[-1]}")


def stage1(preset: str, device: torch.device, crop: int, batches: list[int], steps: int) -> dict:
    from daflow.models.backbone import DiffusionBackbone
    from daflow.models.vae import encode
    from daflow.train.lift import flow_matching_loss, trainable_parameters

    with device:
        backbone = DiffusionBackbone.from_preset(preset)
    backbone.to(device)
    dit = backbone.transformer.float().train()
    dit.gradient_checkpointing = True
    params = [p for _, p in trainable_parameters(dit, "control")]
    opt = torch.optim.AdamW(params, lr=5e-5, weight_decay=1e-2)
    frames = 3
    out = {"trainable_params_M": sum(p.numel() for p in params) / 1e6, "crop": crop, "frames": frames}

    def make_loss(batch: int):
        hq = torch.rand(batch * frames, 3, crop, crop, device=device) * 255
        lq = torch.rand(batch * frames, 3, crop, crop, device=device) * 255
        text, pooled = backbone.prompt.batch(batch, device=device, dtype=torch.float32)

        def loss():
            with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16):
                z0 = encode(backbone.vae, hq).float()
                zl = encode(backbone.vae, lq).float()
            sigma = torch.rand(batch, device=device)
            noise = torch.randn_like(z0)
            with torch.autocast(device.type, dtype=torch.bfloat16):
                return flow_matching_loss(dit, z0, zl, text, pooled, sigma, noise, num_frames=frames)

        return loss

    return largest_batch(make_loss, opt, batches, device, steps, out, "stage 1")


def daflow_module(preset: str, device: torch.device):
    """DA-Flow at ``preset`` size with random weights, built by the one loader (``daflow.load_model``), its whole
    diffusion backbone in bfloat16."""
    import daflow

    model = daflow.load_model("daflow", random_init=True, preset=preset, device=device).module
    model.backbone.to(torch.bfloat16)
    return model


def stage2(preset: str, device: torch.device, crop: int, batches: list[int], steps: int) -> dict:
    from daflow.train.flow import FLOW_PRESETS, flow_loss

    model = daflow_module(preset, device)
    model.train()
    if model.config.raft == "large":
        model.raft.freeze_bn()
    params = [p for n, p in model.named_parameters() if not n.startswith("backbone.")]
    opt = torch.optim.AdamW(params, lr=5e-5, weight_decay=1e-5, eps=1e-8)
    cfg = FLOW_PRESETS["paper"] if preset == "paper" else FLOW_PRESETS["tiny"]
    out = {"trainable_params_M": sum(p.numel() for p in params) / 1e6, "crop": crop, "iters": cfg.iters}

    def make_loss(batch: int):
        data = {
            "lq": torch.rand(batch, 3, 3, crop, crop, device=device) * 255,
            "flow": torch.randn(batch, 2, 2, crop, crop, device=device) * 4,
            "valid": torch.ones(batch, 2, crop, crop, device=device),
        }

        def loss():
            with torch.autocast(device.type, dtype=torch.bfloat16):
                return flow_loss(model, data, step_index=3, config=cfg, noise_seeds=list(range(batch)))

        return loss

    return largest_batch(make_loss, opt, batches, device, steps, out, "stage 2")


def estimate(preset: str, device: torch.device, size: tuple[int, int], iters: int) -> dict:
    model = daflow_module(preset, device)
    chunk = torch.rand(1, 3, 3, *size, device=device) * 255
    out = {"size": f"{size[1]}x{size[0]}", "iters": iters}
    for label, steps in (("single-step", [0]), ("10-step mean", list(range(10)))):
        reset(device)

        def run(steps=steps):
            with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16):
                model(chunk, steps=steps, num_steps=10, iters=iters).mean()

        out[label] = {"s_per_chunk": timed_steps(run, device, 1), "peak_gb": peak_gb(device)}
    return out


def tiny_recipe(device: torch.device, preset: str, budget: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "daflow.cli", "train", "recipe", preset, "-o", tmp, "--device", device.type]
        cmd.append("--no-progress")
        t = time.perf_counter()
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=budget)
        except subprocess.TimeoutExpired as err:
            text = (err.stdout or b"").decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
            return {"completed": False, "seconds": budget, "stages": _stage_times(text), "note": "time budget spent"}
        out = {"completed": res.returncode == 0, "seconds": time.perf_counter() - t, "stages": _stage_times(res.stdout)}
        if res.returncode:
            out["error"] = (res.stderr.strip().splitlines() or ["?"])[-1]
        return out


def _stage_times(log: str) -> dict:
    """``recipe: stage X done in N s`` lines → {stage: seconds}."""
    times = {}
    for line in log.splitlines():
        if line.startswith("recipe: stage ") and " done in " in line:
            name, rest = line[len("recipe: stage ") :].split(" done in ", 1)
            times[name.strip()] = float(rest.split()[0])
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rehearse", action="store_true", help="CPU, tiny sizes and the smoke recipe")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--budget", type=float, default=540.0, help="seconds for the tiny recipe section (default 540)")
    ap.add_argument("--sections", default="stage1,stage2,estimate,recipe")
    args = ap.parse_args()
    if args.rehearse:
        device, preset, crop, batches, steps, size, recipe = (
            torch.device("cpu"),
            "tiny",
            64,
            [2, 1],
            2,
            (96, 128),
            "smoke",
        )
    else:
        if not torch.cuda.is_available():
            raise SystemExit("no CUDA device: run with --rehearse on a CPU")
        device, preset, crop, batches, steps, size, recipe = (
            torch.device("cuda"),
            "paper",
            512,
            [8, 4, 2, 1],
            3,
            (436, 1024),
            "tiny",
        )
    env = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "preset": preset,
    }
    print(f"# gpu_check on {env['device']} (torch {env['torch']}, {preset} preset)\n", flush=True)
    results: dict = {"env": env}
    sections = {
        "stage1": lambda: stage1(preset, device, crop, batches, steps),
        "stage2": lambda: stage2(preset, device, crop, batches, steps),
        "estimate": lambda: estimate(preset, device, size, 20),
        "recipe": lambda: tiny_recipe(device, recipe, args.budget),
    }
    for name in args.sections.split(","):
        t = time.perf_counter()
        try:
            results[name] = sections[name]()
        except Exception as err:  # noqa: BLE001 - recorded, the next section still runs
            results[name] = {"error": f"{type(err).__name__}: {err}", "trace": traceback.format_exc(limit=3)}
        results[name]["section_seconds"] = time.perf_counter() - t
        print(f"## {name}\n\n```\n{json.dumps(results[name], indent=1)}\n```\n", flush=True)
        reset(device)
        if args.json:  # after every section: a later crash keeps what was measured
            args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
