"""One interface for every flow model: ``daflow.load_model`` (pairwise models and DA-Flow alike).

    >>> import daflow
    >>> model = daflow.load_model("dis-raft")              # the bundled default
    >>> flows = model(frames)                                # uint8 [F, H, W, 3] -> float32 [F-1, H, W, 2]

``name_or_path`` is a model name (``daflow evaluate --help`` lists them: ``dis-raft``, ``daflow-tiny``,
``raft-star-tiny``, ``dis``, ``farneback``, ``raft``, ``raft-small``, ``sea-raft-s|m|l``, ``flowseek-t|m``, and
``daflow`` with ``weights=``), a published checkpoint file (``raft-things.pth``, a SEA-RAFT ``.pth``; recognised by
its keys), or a folder written by this package (``daflow train flow``'s DA-Flow model, ``daflow train raft`` or
``daflow train refine``'s ``model/``). Options: ``weights`` (the published file for a name), ``iters``, ``device``,
``random_init`` (smoke tests), and for DA-Flow ``step`` (0: single-step mode, or ``"mean"``), ``dit4sr``, ``vae``,
``null_prompt``, ``seed``.

The model takes the frames of a clip (numpy or torch, uint8 ``[F, H, W, 3]``, F ≥ 2) and returns the forward
flow of every consecutive pair, ``[F−1, H, W, 2]`` (numpy in, numpy out), without gradients. Frames are **RGB**:
OpenCV's ``cv2.imread`` and ``VideoCapture`` give BGR, which is accepted without complaint (the shapes are the same)
and gives worse flow: convert with ``frame[..., ::-1]`` or ``daflow.files.read_image``. DA-Flow runs on 3-frame
chunks sharing their boundary frame, exactly as ``daflow estimate`` does.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from daflow.models.catalog import DAFLOW_NAMES, DENOISE_STEPS, MODELS, entry
from daflow.models.precision import flow_dtype, resolve_dtype, set_compute_dtype

log = logging.getLogger(__name__)


@dataclass
class FlowModel:
    """A loaded model (see the module docstring). ``clip`` is the underlying
    :class:`~daflow.inference.ClipEstimator` (chunks of ``chunk`` frames); ``module`` the torch module when there is
    one (DA-Flow: the :class:`~daflow.models.daflow.DAFlow`); ``pairs`` a pairwise model's
    :class:`~daflow.models.registry.FlowEstimator`. DA-Flow's ``step``, ``num_steps``, ``iters`` and ``seed`` are
    the settings its flows come from (None for pairwise models)."""

    name: str
    description: str
    device: torch.device
    clip: object
    module: torch.nn.Module | None = None
    pairs: object | None = None
    random_init: bool = False
    step: int | str | None = None
    num_steps: int | None = None
    iters: int | None = None
    seed: int = 0

    @classmethod
    def from_daflow(
        cls,
        module,
        *,
        name: str = "daflow",
        step: int | str = 0,
        num_steps: int = DENOISE_STEPS,
        iters: int | None = None,
        seed: int = 0,
        random_init: bool = False,
    ) -> FlowModel:
        """A :class:`~daflow.models.daflow.DAFlow` module (loaded, or being trained) as a flow model: its flows at
        denoising ``step`` (0: the single-step mode; ``"mean"``: the mean of all steps) of a ``num_steps`` schedule,
        on 3-frame chunks, with ``iters`` refinement iterations (None: the module's ``default_iters``)."""
        from daflow.inference import daflow_estimator

        iters = module.default_iters if iters is None else iters

        clip = daflow_estimator(module, step=step, num_steps=num_steps, iters=iters, seed=seed)
        description = clip.description + (" [random weights]" if random_init else "")
        return cls(name, description, module.device, clip, module, None, random_init, step, num_steps, iters, seed)

    @property
    def chunk(self) -> int:
        """Frames per call: 2 for pairwise models, 3 for DA-Flow."""
        return self.clip.chunk

    @torch.no_grad()
    def __call__(self, frames) -> np.ndarray | torch.Tensor:
        from daflow.inference import clip_pair_flows

        as_numpy = not isinstance(frames, torch.Tensor)
        given = np.asarray(frames) if as_numpy else frames
        if given.ndim != 4 or given.shape[-1] != 3 or given.shape[0] < 2:
            raise ValueError(f"frames must be [F, H, W, 3] RGB with F >= 2, got {tuple(given.shape)}")
        if given.dtype not in (np.uint8, torch.uint8):
            kind = "numpy" if as_numpy else "torch"
            raise ValueError(f"frames must be uint8 (0..255), got {kind} {given.dtype}")
        clip = np.ascontiguousarray(given) if as_numpy else given.cpu().numpy()
        flows, _ = clip_pair_flows(self.clip, clip, device=self.device)
        flows = flows.permute(0, 2, 3, 1)
        return flows.numpy() if as_numpy else flows


def _from_config(folder: Path) -> str | None:
    """The model kind a folder written by this package holds (from its ``config.json``), or None."""
    config = folder / "config.json"
    if not config.is_file():
        return None
    try:
        data = json.loads(config.read_text())
    except (OSError, ValueError):
        return None
    kind = data.get("_class_name")
    if kind == "DAFlow":
        return "daflow"
    if kind == "DISRefiner":
        return "dis-raft"
    if kind == "RAFT" and (folder / "raft.safetensors").is_file():
        return detect_checkpoint(folder / "raft.safetensors")  # RAFT, RAFT-small or the refiner, by its keys
    return None


def detect_checkpoint(path: str | os.PathLike) -> str:
    """The model name a weights file belongs to, from its keys: ``raft``, ``raft-small``, ``dis-raft`` (RAFT-small
    with the convex-upsampling head), ``sea-raft-s`` or ``sea-raft-m`` (ResNet-18 or ResNet-34 encoders: 2 or 3
    blocks in the first stage)."""
    from daflow.models.weights import read_state_dict

    state = read_state_dict(path, what="flow checkpoint")
    if "init_conv.weight" in state:
        return "sea-raft-m" if "cnet.layer1.2.conv1.weight" in state else "sea-raft-s"
    if "fnet.conv1.weight" not in state:
        raise ValueError(f"{path}: not a RAFT or SEA-RAFT checkpoint (no fnet.conv1.weight or init_conv.weight)")
    if state["fnet.conv1.weight"].shape[0] == 32:  # RAFT-small's stem
        return "dis-raft" if "update_block.mask.0.weight" in state else "raft-small"
    return "raft"


def resolve_name(name_or_path: str | os.PathLike, weights=None) -> tuple[str, object]:
    """``(model name, weights)`` for a name of the table, a published weights file or a model folder written by
    this package (its weights then come from the folder)."""
    name, path = str(name_or_path), Path(name_or_path)
    if name in MODELS:
        return name, weights
    if path.is_dir():
        kind = _from_config(path)
        if kind is None:
            raise ValueError(
                f"{path}: not a model folder of this package (no config.json with _class_name DAFlow, RAFT or "
                "DISRefiner)"
            )
        return kind, (path if kind == "daflow" else path / "raft.safetensors")
    if path.is_file():
        return detect_checkpoint(path), path
    raise ValueError(
        f"{name!r} is neither a model name ({', '.join(MODELS)}) nor an existing weights file or model folder"
    )


def check_options(name: str, *, iters=None, scale=None, corr_mode: str = "auto", num_steps: int = DENOISE_STEPS):
    """The options every caller may pass, checked the same way for the CLI and the library."""
    e = entry(name)
    if iters is not None and iters < 1:
        raise ValueError(f"--iters must be >= 1, got {iters}")
    if scale is not None and e.family != "sea-raft":
        raise ValueError(f"--scale applies to SEA-RAFT only (its resize protocol); --model {name} does not take it")
    if corr_mode != "auto" and e.family == "classical":
        raise ValueError(f"--corr applies to RAFT-family models; --model {name} has no correlation volume")
    if num_steps < 1:
        raise ValueError(f"--denoise-steps must be >= 1, got {num_steps}")


def load_model(
    name_or_path: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    weights=None,
    iters: int | None = None,
    scale: int | None = None,
    corr_mode: str = "auto",
    random_init: bool = False,
    step: int | str = 0,
    num_steps: int = DENOISE_STEPS,
    seed: int = 0,
    dtype: torch.dtype | str | None = None,
    preset: str = "tiny",
    dit4sr=None,
    vae=None,
    null_prompt=None,
    refiner: dict | None = None,
) -> FlowModel:
    """Load any flow model (module docstring): the one way every command, recipe and benchmark builds one.
    ``refiner``: the DIS→RAFT refiner's ``levels``, ``polish_rounds`` and ``fallback`` (ablations). ``dtype``
    (``"auto"``/None, ``"float32"``, ``"bfloat16"``, ``"float16"`` or a torch dtype): every network's compute dtype,
    the DiT's weights and the RAFT family's autocast (:mod:`daflow.models.precision`); auto is float32 for the RAFT
    family and, for the DiT, bfloat16 on CUDA and float32 on a CPU."""
    from daflow.inference import pairwise
    from daflow.models.registry import build_flow_model, check_weights

    name, weights = resolve_name(name_or_path, weights)
    check_options(name, iters=iters, scale=scale, corr_mode=corr_mode, num_steps=num_steps)
    check_weights(name, weights, random_init)
    if name not in DAFLOW_NAMES and any(x is not None for x in (dit4sr, vae, null_prompt)):
        raise ValueError(f"--dit4sr, --vae and --null-prompt apply to DA-Flow; --model {name} does not take them")
    device = torch.device(device)
    common = {"device": device, "corr_mode": corr_mode, "random_init": random_init, "seed": seed}
    if name in DAFLOW_NAMES:
        backbone_files = {"dit4sr": dit4sr, "vae": vae, "null_prompt": null_prompt}
        model = _load_daflow(name, weights, dtype=dtype, preset=preset, **common, **backbone_files)
        if random_init:
            log.warning("%s: RANDOM weights (--random-init): the flow is meaningless, for smoke tests only", name)
        return FlowModel.from_daflow(
            model, name=name, step=step, num_steps=num_steps, iters=iters, seed=seed, random_init=random_init
        )
    estimator = build_flow_model(name, weights, iters=iters, scale=scale, refiner=refiner, dtype=dtype, **common)
    return FlowModel(
        name, estimator.description, estimator.device, pairwise(estimator), estimator.module, estimator, random_init
    )


def _load_daflow(name: str, weights, *, device, dtype, corr_mode, random_init, preset, seed, dit4sr, vae, null_prompt):
    """The DA-Flow module itself (:class:`~daflow.models.daflow.DAFlow`): ``daflow-tiny`` or ``daflow-small``
    (bundled), ``daflow`` with ``weights`` (a ``daflow train flow`` model folder; ``dit4sr``/``vae``/``null_prompt``
    override its backbone), or random weights at ``preset`` size. ``dtype``: the DiT's weights (the bundled models keep
    theirs; :func:`~daflow.models.precision.resolve_dtype`, auto: bfloat16 on CUDA, else float32; the VAE stays
    float32) and the flow network's compute dtype (:func:`~daflow.models.precision.flow_dtype`, auto: float32);
    ``corr_mode`` RAFT's."""
    from daflow.models import bundled
    from daflow.models.daflow import DAFlow

    flow = flow_dtype(dtype)
    dtype = resolve_dtype(dtype, device)
    if MODELS[name].bundled:
        model = DAFlow.load(bundled.bundled_path(MODELS[name].bundled), device=device)
    elif random_init:
        with device:  # built where it runs (a paper-size model on a GPU never passes through host memory)
            model = DAFlow(preset, seed=seed)
        model.backbone.transformer.to(dtype)
        model = model.to(device)
    else:
        model = DAFlow.load(weights, dit4sr=dit4sr, vae=vae, null_prompt=null_prompt, dtype=dtype, device=device)
    model.raft.corr_mode = corr_mode
    set_compute_dtype(model.raft, flow)
    return model.eval()


@dataclass
class EvalResult:
    """One dataset's scores: EPE and the percentages of pixels with error above 1, 3 and 5 px (paper §5.1) of the
    model's own flows; for DA-Flow also ``per_step`` (``{step: {epe, 1px, 3px, 5px}}``) and ``average`` (their mean,
    what the paper's Table 1 reports). The same numbers as ``daflow evaluate`` with the same model and options."""

    dataset: str
    spec: str
    epe: float
    px1: float
    px3: float
    px5: float
    pairs: int
    seconds_per_pair: float
    per_step: dict | None = None
    average: dict | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def evaluate(
    model,
    data_spec: str,
    *,
    steps=None,
    max_samples: int | None = None,
    reduce: str = "image",
    progress: bool = False,
) -> list[EvalResult]:
    """Score ``model`` (a :class:`FlowModel` or anything :func:`load_model` takes) on every dataset of
    ``data_spec`` (``daflow evaluate``'s grammar, e.g. ``sintel-final:ROOT`` or
    ``synthetic:large-motion?n=8&degrade=realbasicvsr``) with :func:`daflow.eval.benchmark.evaluate_model`, the
    evaluator of ``daflow evaluate``. Pairwise models see every pair; DA-Flow sees 3-frame chunks that share their
    boundary frame, and its denoising ``steps`` (default all) are scored too."""
    from daflow.eval.benchmark import eval_sets_for, evaluate_model

    model = model if isinstance(model, FlowModel) else load_model(model)
    results = []
    for eval_set in eval_sets_for(data_spec, model.chunk):
        r = evaluate_model(model, eval_set, steps=steps, max_samples=max_samples, reduce=reduce, progress=progress)
        m = r["metrics"]
        results.append(
            EvalResult(
                eval_set.label,
                eval_set.spec,
                m["epe"],
                m["1px"],
                m["3px"],
                m["5px"],
                r["pairs"],
                r["seconds_per_pair"],
                r.get("per_step"),
                r.get("average"),
            )
        )
    return results


def load_backbone(
    dit4sr=None,
    vae=None,
    null_prompt=None,
    *,
    random_init: bool = False,
    preset: str = "tiny",
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device="cpu",
    bundled_fallback: bool = False,
):
    """The lifted DiT4SR with its VAE and null prompt (:class:`~daflow.models.backbone.DiffusionBackbone`):
    the published files (``dit4sr`` and ``vae``, optionally ``null_prompt``), random weights at ``preset`` size,
    or, with ``bundled_fallback`` and neither given, the bundled tiny restorer (else DA-Flow-tiny's DiT). Returns
    ``(backbone, note)``: ``note`` is a sentence for the user when a stand-in was chosen, else ``""``."""
    from daflow.models import bundled
    from daflow.models.backbone import DiffusionBackbone

    device = torch.device(device)
    if random_init:
        if dit4sr or vae:
            raise ValueError("--random-init and --dit4sr/--vae exclude each other")
        backbone = DiffusionBackbone.from_preset(preset, seed=seed)
        backbone.transformer.to(dtype)  # the VAE stays float32, as from_pretrained keeps it
        backbone.origin = "random"
        return backbone.to(device), f"random {preset} DiT4SR and VAE weights: for smoke tests only"
    if dit4sr or vae or not bundled_fallback:
        if not (dit4sr and vae):
            raise ValueError(
                "give --dit4sr and --vae (the published DiT4SR transformer and SD3.5 VAE), or --random-init"
            )
        backbone = DiffusionBackbone.from_pretrained(dit4sr, vae, null_prompt, dtype=dtype, device=device)
        backbone.origin = str(dit4sr)
        return backbone, ""
    paper = "for the paper's model pass the published DiT4SR, VAE and null prompt"
    if (bundled.BUNDLE_DIR / bundled.RESTORER).is_dir():
        return bundled.load_restorer(device=device), f"the bundled tiny restorer (a demonstration); {paper}"
    if not bundled.available():
        raise ValueError("this installation has no bundled backbone: give dit4sr and vae")
    backbone = bundled.load_daflow_tiny(device=device).backbone
    backbone.origin = "bundled:daflow-tiny"
    return backbone, f"the bundled tiny DiT4SR of DA-Flow-tiny (a demonstration); {paper}"
