"""The tiny recipe: every stage of the paper at small size on a CPU, with the paper's own code paths.

Stages, each in ``RUN/<stage>/`` and skipped once its ``done.json`` exists (each trainer also resumes mid-stage):

==============  =========================================================================================================
``data``        exact-ground-truth synthetic clips written as frame folders (``data/{train,val,eval}/hq``), their exact
                flow (``…/gt``) and a degraded mirror made by ``daflow degrade`` (``…/lq``, the ``realbasicvsr`` preset);
                train, validation (layer choice) and evaluation sets have their own seeds
``vae``         stage 0: an SD3-layout VAE at the tiny widths (stand-in for SD3.5's VAE)
``dit0``        stage 0: DiT4SR at the recipe's width trained per frame (unlifted, F = 1) to restore HQ latents from LQ
                (stand-in for the published ``dit4sr_q``)
``lift``        stage 1 (§4.2): the DiT lifted and fine-tuned on 3-frame clips
``one_step``    the lifted DiT fine-tuned for ``daflow restore``'s one-step call (:mod:`daflow.train.one_step`) on the
                LQ mirrors of ``one_step_mix`` (``…/lq`` for ``degrade``, ``…/lq_<preset>`` for ``extra_degrades``)
``fidelity``    the restorer's fidelity head (:mod:`daflow.train.fidelity`) beside the frozen one-step DiT, on the
                mirrors of ``fidelity_mix``;
                the DiT's output and the neighbours aligned by ``fidelity_flow`` computed once per clip
                (``fidelity/prepared_<mirror>.pt``; with ``fidelity_prefilter`` the LQ frames first pass
                ``daflow restore``'s temporal prefilter, ``prepared_<mirror>_prefiltered_r<radius>_h<strength>.pt``)
``gate``        the restorer's degradation gate (:mod:`daflow.models.gate`): a logistic regression on statistics
                of the LQ training clips of every mirror, codec damage alone against the rest (``gate/gate.json``)
``raft``        RAFT on clean frames with exact ground truth: the "RAFT" baseline and a teacher candidate
``pseudo_gt``   the teacher's flow on the HQ frames of the training and validation clips (``daflow pseudo-gt``); the
                teacher is the candidate (``teacher``: the ``raft`` stage's model, OpenCV's ``dis``, or ``best``
                of the two) with the lower EPE on the clean validation frames. The paper's teacher, SEA-RAFT, is far
                stronger than a RAFT trainable in minutes on a CPU; what the protocol needs is the most accurate
                estimator on clean frames, so ``best`` measures and picks rather than assuming
``analyze``     the zero-shot layer × step analysis (§4.3) of the lifted and the un-lifted models on the validation set;
                the top blocks of each become their DA-Flow taps
``daflow``      stage 2 (§4.4) on LQ clips with the teacher's pseudo ground truth (the paper's protocol)
``daflow_gt``   the same with the exact ground truth
``raft_star``   RAFT fine-tuned on LQ clips with the pseudo ground truth (RAFT*, App. C.2)
``baseline``    Baseline* (Table 2): stage 2 on the features of the un-finetuned model (``dit0`` lifted, no stage 1)
``report``      every model on the held-out set in the paper's table layouts (:mod:`daflow.recipe.reproduce`)
==============  =========================================================================================================

All models are saved as safetensors with their configs.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from daflow.files import atomic_write_text, claim_run
from daflow.recipe.layout import RunLayout
from daflow.recipe.presets import STAGES, TEACHERS, RecipeConfig

log = logging.getLogger(__name__)


def _write_clips(folder: Path, n: int, config, seed: int) -> None:
    """``folder/hq/clip_NNNN/frame_KKKK.png`` and ``folder/gt/clip_NNNN/frame_KKKK.flo`` (exact forward flow)."""
    from daflow.data.synthetic import SyntheticClips
    from daflow.files import write_image
    from daflow.flow.io import write_flow

    clips = SyntheticClips(n, config=config, seed=seed)
    for i in range(n):
        clip_dir = f"clip_{i:04d}"
        if (folder / "gt" / clip_dir / f"frame_{config.num_frames - 2:04d}.flo").is_file():
            continue
        sample = clips[i]
        for k, frame in enumerate(sample.frames):
            write_image(folder / "hq" / clip_dir / f"frame_{k:04d}.png", frame)
        for k, flow in enumerate(sample.flow):
            write_flow(folder / "gt" / clip_dir / f"frame_{k:04d}.flo", flow)


class Recipe:
    """Runs the stages of :data:`STAGES` into ``run`` (see the module docstring)."""

    def __init__(
        self, run: str | Path, config: RecipeConfig, *, progress: bool = True, device: str | torch.device = "cpu"
    ):
        self.run, self.config, self.progress, self.device = Path(run), config, progress, torch.device(device)
        self.layout = RunLayout(self.run)
        claim_run(self.layout.recipe_json, {"config": dataclasses.asdict(config)}, what="a recipe run")

    # -------------------------------------------------------------------------------------- helpers

    def data(self, split: str, kind: str) -> Path:
        return self.layout.data(split, kind)

    def mirror(self, preset: str) -> str:
        """The folder name of a degradation preset's LQ mirror of the training clips (``lq`` for ``degrade``)."""
        return "lq" if preset == self.config.degrade else f"lq_{preset}"

    def spec(self, split: str, labels: str) -> str:
        """``labeled:`` spec of a split's LQ frames with ``labels`` (``gt`` or ``pgt``); ``hq`` frames with ``hq:``."""
        frames, labels = ("hq", labels[3:]) if labels.startswith("hq:") else ("lq", labels)
        return f"labeled:{self.data(split, frames)}?labels={self.data(split, labels)}"

    def dit_config(self):
        from daflow.models.dit4sr import DIT4SR_PRESETS

        n = self.config.dit_layers
        c = self.config
        return dataclasses.replace(
            DIT4SR_PRESETS["tiny"],
            num_layers=n,
            dual_attention_layers=tuple(range(n // 2)),
            num_attention_heads=c.dit_heads,
            attention_head_dim=c.dit_head_dim,
            caption_projection_dim=c.dit_heads * c.dit_head_dim,
        )

    def backbone(self, transformer: Path | None):
        """The recipe's diffusion backbone: the trained VAE and ``transformer`` (random at the recipe's width when
        None), with the zero null prompt."""
        from daflow.models.backbone import DiffusionBackbone
        from daflow.models.dit4sr import DiT4SRTransformer, load_dit4sr
        from daflow.models.prompt import zero_prompt
        from daflow.models.vae import load_vae

        vae = load_vae(self.layout.vae)
        if transformer is None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.config.seed)
                dit = DiT4SRTransformer(self.dit_config())
        else:
            dit = load_dit4sr(transformer)
        cfg = dit.config
        return DiffusionBackbone(dit, vae, zero_prompt(cfg.joint_attention_dim, cfg.pooled_projection_dim)).to(
            self.device
        )

    # --------------------------------------------------------------------------------------- stages

    def stage_data(self) -> dict:
        from daflow.data.degrade.mirror import degrade_tree
        from daflow.data.synthetic import SYNTHETIC_PRESETS

        c = self.config
        synth = dataclasses.replace(
            SYNTHETIC_PRESETS[c.synthetic], height=c.size[0], width=c.size[1], num_frames=c.frames
        )
        for split, n, seed in (
            ("train", c.train_clips, c.seed),
            ("val", c.val_clips, c.seed + 1000),
            ("eval", c.eval_clips, c.seed + 2000),
        ):
            _write_clips(self.layout.stage("data") / split, n, synth, seed)
            degrade_tree(
                "youhq",
                self.data(split, "hq"),
                self.data(split, "lq"),
                preset=c.degrade,
                seed=seed,
                progress=self.progress,
            )
        for k, preset in enumerate(c.extra_degrades):
            degrade_tree(
                "youhq",
                self.data("train", "hq"),
                self.data("train", f"lq_{preset}"),
                preset=preset,
                seed=c.seed + 7 + k,
                progress=self.progress,
            )
        return {"train": c.train_clips, "val": c.val_clips, "eval": c.eval_clips, "extra": list(c.extra_degrades)}

    def stage_vae(self) -> dict:
        from daflow.train.data import build_clip_source
        from daflow.train.vae import VAETrainConfig, train_vae

        c = self.config
        source = build_clip_source(f"youhq:{self.data('train', 'hq')}?lq={self.data('train', 'lq')}", num_frames=1)
        return train_vae(
            source,
            self.layout.stage("vae"),
            VAETrainConfig(
                steps=c.vae_steps,
                batch=c.vae_batch,
                frames=1,
                crop=c.crop,
                seed=c.seed,
                save_every=max(c.vae_steps // 10, 1),
                images=c.vae_images,
            ),
            preset=c.vae_preset,
            device=self.device,
            progress=self.progress,
        )

    def _lift(self, stage: str, transformer: Path | None, frames: int, steps: int) -> dict:
        from daflow.train.data import build_clip_source
        from daflow.train.lift import LIFT_PRESETS, train_lift

        c = self.config
        source = build_clip_source(f"youhq:{self.data('train', 'hq')}?lq={self.data('train', 'lq')}", num_frames=frames)
        config = dataclasses.replace(
            LIFT_PRESETS["tiny"], steps=steps, frames=frames, crop=c.crop, seed=c.seed, save_every=max(steps // 3, 1)
        )
        return train_lift(
            self.backbone(transformer),
            source,
            self.layout.stage(stage),
            config,
            model_info={"transformer": str(transformer) if transformer else "random"},
            progress=self.progress,
        )

    def stage_dit0(self) -> dict:
        return self._lift("dit0", None, 1, self.config.dit0_steps)  # F = 1: per frame, the unlifted restoration model

    def stage_lift(self) -> dict:
        return self._lift("lift", self.layout.transformer("dit0"), self.config.frames, self.config.lift_steps)

    def restoration_data(self):
        """(the training clips of the LQ mirrors of ``one_step_mix``, every mirror when it is empty, as one
        :class:`~daflow.train.data.MixedClips`, its spec)."""
        from daflow.train.data import MixedClips, TrainingClips, build_clip_source

        c = self.config
        mirrors = [self.mirror(p) for p in (c.one_step_mix or c.degrades)]
        specs = [f"youhq:{self.data('train', 'hq')}?lq={self.data('train', m)}" for m in mirrors]
        clips = [
            TrainingClips(build_clip_source(s, num_frames=c.frames), crop=c.crop, seed=c.seed, require=("hq", "lq"))
            for s in specs
        ]
        return MixedClips(clips), " + ".join(specs)

    def stage_one_step(self) -> dict:
        from daflow.train.one_step import OneStepConfig, train_one_step

        c = self.config
        dataset, spec = self.restoration_data()
        save_every = max(c.one_step_steps // 8, 1)
        config = OneStepConfig(
            steps=c.one_step_steps, frames=c.frames, crop=c.crop, seed=c.seed, save_every=save_every, lr=c.one_step_lr
        )
        transformer = self.layout.transformer("lift")
        return train_one_step(
            self.backbone(transformer),
            dataset,
            self.layout.stage("one_step"),
            config,
            data_spec=spec,
            model_info={"transformer": str(transformer)},
            progress=self.progress,
        )

    def stage_fidelity(self) -> dict:
        from daflow.models.fidelity import FIDELITY_PRESETS
        from daflow.train.fidelity import FidelityTrainConfig, train_fidelity

        c = self.config
        sigma = json.loads((self.layout.stage("one_step") / "train_one_step.json").read_text())["sigma"]
        if c.fidelity_head not in FIDELITY_PRESETS:
            raise ValueError(f"fidelity_head must be one of {sorted(FIDELITY_PRESETS)}, got {c.fidelity_head!r}")
        head = FIDELITY_PRESETS[c.fidelity_head]
        transformer = self.layout.transformer("one_step")
        backbone = self.backbone(transformer)
        dataset, spec = self.prepared_data(backbone, sigma, head.neighbours > 0)
        config = FidelityTrainConfig(
            steps=c.fidelity_steps,
            frames=c.frames,
            crop=c.crop,
            seed=c.seed,
            save_every=max(c.fidelity_steps // 6, 1),
            sigma=sigma,
            batch=c.fidelity_batch,
        )
        return train_fidelity(
            dataset,
            self.layout.stage("fidelity"),
            config,
            device=self.device,
            head_config=head,
            data_spec=spec,
            model_info={"transformer": str(transformer), "flow": c.fidelity_flow if head.neighbours else None},
            progress=self.progress,
        )

    def prepared_data(self, backbone, sigma: float, aligned: bool):
        """The training clips of the LQ mirrors of ``fidelity_mix`` as :class:`~daflow.train.fidelity.PreparedClips`
        mixed in its order (what the frozen one-step DiT makes of them, and with ``aligned`` their neighbours aligned
        by ``fidelity_flow``; with ``fidelity_prefilter`` from the LQ frames after ``daflow restore``'s default
        prefilter), each mirror computed once into ``fidelity/prepared_<mirror>[_prefiltered_…].pt``; (the dataset,
        its spec)."""
        from daflow.files import atomic_path
        from daflow.train.data import MixedClips, build_clip_source
        from daflow.train.fidelity import PreparedClips, prepare_clips

        c = self.config
        flow = None
        if aligned or c.fidelity_prefilter:
            from daflow.api import load_model

            flow = load_model(c.fidelity_flow, device=self.device)
        prefilter = None
        if c.fidelity_prefilter:
            from daflow.restoration import RestoreSettings

            prefilter = RestoreSettings().temporal()  # the prefilter of `daflow restore`
        tag = f"_prefiltered_r{prefilter.radius}_h{prefilter.strength:g}" if prefilter else ""
        prepared, parts, specs = {}, [], []
        for k, preset in enumerate(c.fidelity_mix):
            mirror = self.mirror(preset)
            spec = f"youhq:{self.data('train', 'hq')}?lq={self.data('train', mirror)}"
            path = self.layout.stage("fidelity") / f"prepared_{mirror}{tag}.pt"
            if mirror not in prepared:
                if not path.is_file():
                    source = build_clip_source(spec, num_frames=c.frames)
                    clips = prepare_clips(
                        backbone, source, sigma=sigma, flow_model=flow, prefilter=prefilter, progress=self.progress
                    )
                    with atomic_path(path) as tmp:
                        torch.save(clips, tmp)
                prepared[mirror] = torch.load(path)
            repeat = c.fidelity_mix[:k].count(preset)  # a mirror drawn again draws other crops
            parts.append(PreparedClips(prepared[mirror], crop=c.crop, seed=c.seed + repeat))
            specs.append(spec)
        return MixedClips(parts), " + ".join(specs)

    def _raft(self, stage: str, spec: str, steps: int, init: Path | None) -> dict:
        from daflow.train.data import build_clip_source
        from daflow.train.raft import RAFT_PRESETS, train_raft

        c = self.config
        config = dataclasses.replace(
            RAFT_PRESETS["tiny"],
            steps=steps,
            crop=c.crop,
            frames=c.frames,
            seed=c.seed,
            inputs="lq",
            save_every=max(steps // 3, 1),
        )
        source = build_clip_source(spec, num_frames=c.frames)  # labeled source: its frames come as "lq"
        return train_raft(
            source, self.layout.stage(stage), config, init=init, device=self.device, progress=self.progress
        )

    def stage_gate(self) -> dict:
        from daflow.models.gate import CODEC_ONLY_PRESETS, fit_gate
        from daflow.train.data import build_clip_source

        c = self.config
        clips, labels = [], []
        for preset in c.degrades:
            mirror = self.data("train", self.mirror(preset))
            source = build_clip_source(f"youhq:{self.data('train', 'hq')}?lq={mirror}", num_frames=c.frames)
            for index in range(len(source.clips)):
                clips.append(np.ascontiguousarray(source.lq_mirror[index].frames))
                labels.append(int(preset in CODEC_ONLY_PRESETS))
        if len(set(labels)) < 2:
            raise ValueError(
                f"the gate stage needs LQ mirrors of both kinds, codec damage alone ({', '.join(CODEC_ONLY_PRESETS)}) "
                f"and other damage; this recipe's are {', '.join(c.degrades)}"
            )
        gate, accuracy = fit_gate(clips, labels)
        folder = self.layout.stage("gate")
        folder.mkdir(parents=True, exist_ok=True)
        gate.save(folder)
        return {"clips": len(clips), "codec_only": sum(labels), "presets": list(c.degrades), "accuracy": accuracy}

    def stage_raft(self) -> dict:
        return self._raft("raft", self.spec("train", "hq:gt"), self.config.raft_steps, None)

    def teacher(self, name: str):
        """Teacher candidate ``name`` (:data:`TEACHERS`) as a flow estimator."""
        from daflow.api import load_model

        if name == "raft":
            return load_model(self.layout.raft_weights("raft"), iters=12, device=self.device).pairs
        return load_model(name).pairs  # classical: CPU

    def stage_pseudo_gt(self) -> dict:
        from daflow.data.specs import build_eval_sets
        from daflow.eval.benchmark import evaluate_model
        from daflow.train.pseudo_gt import write_pseudo_gt

        c = self.config
        candidates = TEACHERS if c.teacher == "best" else (c.teacher,)
        (clean,) = build_eval_sets(self.spec("val", "hq:gt"))  # clean validation frames, exact flow
        teachers = {name: self.teacher(name) for name in candidates}
        scores = {name: evaluate_model(t, clean, progress=False)["metrics"]["epe"] for name, t in teachers.items()}
        name = min(scores, key=scores.get)
        log.info(
            "pseudo-GT teacher: %s (EPE on clean validation frames: %s)",
            name,
            ", ".join(f"{k} {v:.3f}" for k, v in scores.items()),
        )
        settings = {"teacher_choice": c.teacher, "clean_val_epe": scores}
        if name == "raft":
            settings.update(iters=12, weights=str(self.layout.stage("raft")))
        reports = {
            split: write_pseudo_gt(
                self.data(split, "hq"),
                self.data(split, "pgt"),
                teachers[name],
                progress=self.progress,
                settings=settings,
            ).pairs
            for split in ("train", "val")
        }
        return {"teacher": name, "clean_val_epe": scores, "pairs": reports}

    def stage_analyze(self) -> dict:
        from daflow.data.specs import build_eval_sets
        from daflow.eval.analysis import run_analysis
        from daflow.eval.report import write_analysis

        c = self.config
        (val,) = build_eval_sets(self.spec("val", "pgt"), num_frames=c.frames, stride=c.frames - 1)
        chosen = {}
        series = []
        for label, transformer in (
            ("Baseline", self.layout.transformer("dit0")),
            ("Lifting", self.layout.transformer("lift")),
        ):
            tables = run_analysis(
                self.backbone(transformer),
                val.dataset,
                steps=c.analysis_steps,
                seed=c.seed,
                progress=self.progress,
                label=label,
            )
            chosen[label] = sorted(tables[0].ranking()[: c.taps])
            folder = self.layout.stage("analyze") / label.lower()
            write_analysis(folder, label, tables, meta={"data": val.spec, "steps": c.analysis_steps}, compare=series)
            series += [(f"{label} {t.name}", t) for t in tables]
        return {"blocks": chosen}

    def _flow(self, stage: str, transformer: Path, blocks: list[int], labels: str) -> dict:
        from daflow.models.daflow import DAFLOW_PRESETS, DAFlow
        from daflow.train.data import build_clip_source
        from daflow.train.flow import FLOW_PRESETS, train_flow

        c = self.config
        model = DAFlow(dataclasses.replace(DAFLOW_PRESETS["tiny"], blocks=tuple(blocks)), self.backbone(transformer))
        model.init_raft(self.layout.raft_weights("raft"))  # as the paper starts from raft-things
        model.to(self.device)
        config = dataclasses.replace(
            FLOW_PRESETS["tiny"],
            steps=c.flow_steps,
            crop=c.crop,
            frames=c.frames,
            seed=c.seed,
            save_every=max(c.flow_steps // 3, 1),
        )
        source = build_clip_source(self.spec("train", labels), num_frames=c.frames)
        summary = train_flow(
            model,
            source,
            self.layout.stage(stage),
            config,
            progress=self.progress,
            model_info={"transformer": str(transformer), "blocks": blocks, "labels": labels},
        )
        return summary

    def _blocks(self, label: str) -> list[int]:
        return json.loads(self.layout.done("analyze").read_text())["blocks"][label]

    def stage_daflow(self) -> dict:
        return self._flow("daflow", self.layout.transformer("lift"), self._blocks("Lifting"), "pgt")

    def stage_daflow_gt(self) -> dict:
        return self._flow("daflow_gt", self.layout.transformer("lift"), self._blocks("Lifting"), "gt")

    def stage_raft_star(self) -> dict:
        return self._raft(
            "raft_star",
            self.spec("train", "pgt"),
            self.config.star_steps,
            self.layout.raft_weights("raft"),
        )

    def stage_baseline(self) -> dict:
        return self._flow("baseline", self.layout.transformer("dit0"), self._blocks("Baseline"), "pgt")

    def stage_report(self) -> dict:
        from daflow.recipe.reproduce import write_report

        return {"report": str(write_report(self.run, device=self.device, progress=self.progress))}

    # ------------------------------------------------------------------------------------------ run

    def run_all(self, *, only: list[str] | None = None, report: Callable[[str], None] = print) -> dict:
        """Run every stage not yet done (or only those named), in order; returns ``{stage: seconds}``."""
        unknown = set(only or []) - set(STAGES)
        if unknown:
            raise ValueError(f"unknown recipe stages {sorted(unknown)}; stages: {', '.join(STAGES)}")
        times = {}
        for stage in self.config.stages:
            if (only and stage not in only) or self.layout.is_done(stage):
                continue
            self.layout.require(stage)
            report(f"recipe: stage {stage} ...")
            t0 = time.perf_counter()
            info = getattr(self, f"stage_{stage}")()
            times[stage] = round(time.perf_counter() - t0, 1)
            atomic_write_text(
                self.layout.done(stage), json.dumps({**_jsonable(info), "seconds": times[stage]}, indent=2)
            )
            report(f"recipe: stage {stage} done in {times[stage]:.0f} s")
        return times


def _jsonable(info) -> dict:
    if dataclasses.is_dataclass(info):
        info = dataclasses.asdict(info)
    return json.loads(json.dumps(info, default=lambda o: o.item() if isinstance(o, np.generic) else str(o)))
