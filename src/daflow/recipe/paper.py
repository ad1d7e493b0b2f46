"""The paper-scale recipe as one documented plan: ``daflow train recipe paper --dry-run`` (paper §5.1, App. A).

Inputs named on the command line: the YouHQ training clips, the benchmark roots (Sintel, Spring, TartanAir; any
subset), the published ``dit4sr_q``, the SD3.5 VAE, the DiT4SR null prompt, ``raft-things.pth`` (stage 2 starts from
it) and SEA-RAFT's ``Tartan-C-T-TSKH-spring540x960-M.pth`` (the pseudo-GT teacher). :func:`check_inputs` names every
missing or malformed piece; :func:`paper_plan` lists the stages, each one resumable ``daflow`` command:

1. ``degrade``: the LQ mirror of YouHQ and of each benchmark (RealBasicVSR pipeline, seed 0);
2. ``pseudo-gt``: SEA-RAFT spring-M (half resolution, 20 iterations) on the HQ frames of every YouHQ clip;
3. ``lift``: stage 1 (20K steps, batch 8 per GPU on 4 GPUs, 512² crops, 3 frames) through ``accelerate launch``;
4. ``flow``: stage 2 on the LQ mirror with the pseudo ground truth, DiT frozen, from ``raft-things.pth``;
5. ``evaluate``: DA-Flow per denoising step on every degraded benchmark.

Expected GPU-hours come from throughput measured on an H100 (BENCHMARKS.md) where a figure exists, and say so where
none does yet. Stages 1, 2 and 5 need a GPU; 1 and 2 take ``--gpus N`` through accelerate; 1 (degrade), 2 (pseudo-GT)
and 5 (evaluate) spread over machines with ``--shard K/N`` (:mod:`daflow.shard`; the plan prints how).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

# measured on one H100 (BENCHMARKS.md, "GPU (H100), RAFT and SEA-RAFT-M"): spring-M, 960x540, 20 iterations
TEACHER_SECONDS_PER_PAIR = 0.048
YOUHQ_PAIRS_ESTIMATE = 38_576 * 31  # 38,576 clips of ~32 frames (the paper's §5.1)
PAPER_STEPS = 20_000
PAPER_BATCH_PER_GPU = 8


@dataclass(frozen=True)
class PaperInputs:
    youhq: Path | None = None
    dit4sr: Path | None = None
    vae: Path | None = None
    null_prompt: Path | None = None
    raft_init: Path | None = None
    teacher: Path | None = None
    benchmarks: dict[str, Path] = field(default_factory=dict)  # sintel / spring / tartanair roots


def _has_safetensors(path: Path, subfolder: str) -> bool:
    if path.is_file():
        return path.suffix == ".safetensors"
    for folder in (path, path / subfolder):
        if folder.is_dir() and any(folder.glob("*.safetensors")):
            return True
    return False


def check_inputs(inputs: PaperInputs) -> list[str]:
    """One line per missing or malformed input (empty when everything is there)."""
    from daflow.models.prompt import NULL_PROMPT_FILES

    problems = []

    def need(value, flag: str, what: str) -> Path | None:
        if value is None:
            problems.append(f"{flag}: missing ({what})")
            return None
        path = Path(value)
        if not path.exists():
            problems.append(f"{flag} {path}: not found ({what})")
            return None
        return path

    youhq = need(inputs.youhq, "--youhq", "the YouHQ training clips: a folder of videos or frame folders")
    if youhq is not None:
        from daflow.data.labeled import find_clip_roots

        if not youhq.is_dir() or not find_clip_roots(youhq):
            problems.append(f"--youhq {youhq}: no videos or frame folders below it")
    dit = need(inputs.dit4sr, "--dit4sr", "the published dit4sr_q folder (Hugging Face acceptee/DiT4SR)")
    if dit is not None and not _has_safetensors(dit, "transformer"):
        problems.append(f"--dit4sr {dit}: no transformer .safetensors in it or in its transformer/ folder")
    vae = need(inputs.vae, "--vae", "the stable-diffusion-3.5-medium folder, its vae/ folder or the file")
    if vae is not None and not _has_safetensors(vae, "vae"):
        problems.append(f"--vae {vae}: no VAE .safetensors in it or in its vae/ folder")
    prompt = need(inputs.null_prompt, "--null-prompt", f"the folder with {' and '.join(NULL_PROMPT_FILES)}")
    if prompt is not None and not all((prompt / f).is_file() for f in NULL_PROMPT_FILES):
        problems.append(f"--null-prompt {prompt}: expected {' and '.join(NULL_PROMPT_FILES)} in it")
    need(inputs.raft_init, "--raft-init", "raft-things.pth from princeton-vl/RAFT")
    need(inputs.teacher, "--teacher", "Tartan-C-T-TSKH-spring540x960-M.pth from princeton-vl/SEA-RAFT")
    if not inputs.benchmarks:
        problems.append("--sintel/--spring/--tartanair: at least one benchmark root is needed for the evaluation")
    for name, root in inputs.benchmarks.items():
        need(root, f"--{name}", f"the {name} benchmark root")
    return problems


@dataclass(frozen=True)
class PlanStep:
    name: str
    command: str
    device: str  # "cpu" or "gpu"
    gpu_hours: float | None
    basis: str


def _count_pairs(youhq: Path | None) -> tuple[int, str]:
    if youhq is not None and Path(youhq).is_dir():
        from daflow.data.labeled import find_clip_roots

        clips = find_clip_roots(Path(youhq))
        if clips:
            return len(clips) * 31, f"{len(clips):,} clips found x ~31 pairs"
    return YOUHQ_PAIRS_ESTIMATE, "YouHQ's 38,576 clips x ~31 pairs (paper §5.1)"


def paper_plan(inputs: PaperInputs, run: Path, *, gpus: int = 4) -> list[PlanStep]:
    """The stages of the paper-scale run into ``run`` (module docstring), with their commands and costs."""
    if gpus < 1:
        raise ValueError(f"--gpus must be >= 1, got {gpus}")
    run = Path(run)
    lq, pgt = run / "youhq_lq", run / "pseudo_gt"
    pairs, basis = _count_pairs(inputs.youhq)
    backbone = f"--dit4sr {inputs.dit4sr} --vae {inputs.vae} --null-prompt {inputs.null_prompt}"
    launch = f"accelerate launch --num_processes {gpus} -m daflow.cli" if gpus > 1 else "daflow"
    steps = [
        PlanStep(
            "degrade",
            f"daflow degrade youhq {inputs.youhq} -o {lq} --seed 0 --workers 16",
            "cpu",
            None,
            "CPU: ~0.2 s per 448x1024 frame and core (BENCHMARKS.md, Degradation)",
        ),
    ]
    for name, root in inputs.benchmarks.items():
        steps.append(
            PlanStep(
                f"degrade {name}",
                f"daflow degrade {name} {root} -o {run / 'bench' / name} --seed 0",
                "cpu",
                None,
                "CPU, as above",
            )
        )
    hours = pairs * TEACHER_SECONDS_PER_PAIR / 3600
    steps.append(
        PlanStep(
            "pseudo-gt",
            f"daflow pseudo-gt {inputs.youhq} -o {pgt} --teacher sea-raft-m --weights {inputs.teacher} --iters 20",
            "gpu",
            hours,
            f"{pairs:,} pairs x {TEACHER_SECONDS_PER_PAIR * 1e3:.0f} ms (H100, measured), {basis}",
        )
    )
    steps.append(
        PlanStep(
            "lift",
            f"{launch} train lift --settings paper {backbone} --data youhq:{inputs.youhq}?lq={lq} -o {run / 'lift'}",
            "gpu",
            None,
            f"{PAPER_STEPS:,} steps, {PAPER_BATCH_PER_GPU} clips x {gpus} GPUs; s/step not yet measured on a GPU",
        )
    )
    steps.append(
        PlanStep(
            "flow",
            f"{launch} train flow --settings paper --dit4sr {run / 'lift' / 'transformer'} --vae {inputs.vae} "
            f"--null-prompt {inputs.null_prompt} --raft-init {inputs.raft_init} --data labeled:{lq}?labels={pgt} "
            f"-o {run / 'flow'}",
            "gpu",
            None,
            f"{PAPER_STEPS:,} steps, {PAPER_BATCH_PER_GPU} clips x {gpus} GPUs; s/step not yet measured on a GPU",
        )
    )
    data = " ".join(f"--data {name}:{run / 'bench' / name}" for name in inputs.benchmarks)
    steps.append(
        PlanStep(
            "evaluate",
            f"daflow evaluate --model daflow --weights {run / 'flow' / 'model'} {data} -o {run / 'eval.json'}",
            "gpu",
            None,
            "10 denoising steps per 3-frame chunk",
        )
    )
    return steps


def format_plan(steps: list[PlanStep], *, gpus: int) -> str:
    """The plan as a Markdown table and a total."""
    lines = ["| stage | device | expected GPU-hours | basis |", "|---|---|---|---|"]
    known = 0.0
    for s in steps:
        hours = "-" if s.device == "cpu" else ("not measured" if s.gpu_hours is None else f"{s.gpu_hours:.1f}")
        known += s.gpu_hours or 0.0
        gpu_note = f" x {gpus}" if s.name in ("lift", "flow") else ""
        lines.append(f"| {s.name} | {s.device}{gpu_note} | {hours} | {s.basis} |")
    lines.append("")
    lines.append(f"measured GPU-hours so far: {known:.1f} (+ the stages marked 'not measured')")
    lines.append("")
    lines += [f"{i + 1}. {s.command}" for i, s in enumerate(steps)]
    lines += ["", *shard_notes(steps)]
    return "\n".join(lines)


def shard_notes(steps: list[PlanStep]) -> list[str]:
    """How the data-preparation and evaluation stages of ``steps`` spread over N machines (``--shard K/N``, K from 0):
    e.g. a SLURM array job, ``--shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT``."""
    by_name = {s.name: s.command for s in steps}
    out = ["Across N machines (K = 0 .. N-1, e.g. a SLURM array: K/N = $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT):"]
    if "degrade" in by_name:
        out.append(
            f"- degrade: `{by_name['degrade']} --shard K/N` on each machine (one shared output folder, or copy the "
            "folders together), then the same command once without --shard: it degrades nothing and writes "
            "manifest.json"
        )
    if "pseudo-gt" in by_name:
        out.append(
            f"- pseudo-gt: `{by_name['pseudo-gt']} --shard K/N`; the labels land in one tree, as one run writes them"
        )
    if "evaluate" in by_name:
        cmd = by_name["evaluate"].rsplit(" -o ", 1)[0]
        out.append(
            f"- evaluate: `{cmd} --shard K/N -o part_K.json`, then `daflow evaluate --merge part_*.json -o eval.json` "
            "(the metrics of one run, bit for bit)"
        )
    return out


def total_gpu_hours(steps: list[PlanStep]) -> float:
    return math.fsum(s.gpu_hours or 0.0 for s in steps)
