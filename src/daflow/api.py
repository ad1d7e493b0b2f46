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

The model takes the frames of a clip (numpy or torch, uint8 RGB ``[F, H, W, 3]``, F ≥ 2) and returns the forward
flow of every consecutive pair, ``[F−1, H, W, 2]`` (numpy in, numpy out), without gradients. DA-Flow runs on 3-frame
chunks sharing their boundary frame, exactly as ``daflow estimate`` does.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

DAFLOW_NAMES = ("daflow", "daflow-tiny")


@dataclass
class FlowModel:
    """A loaded model (see the module docstring). ``clip`` is the underlying
    :class:`~daflow.inference.ClipEstimator`; ``module`` the torch module when there is one."""

    name: str
    description: str
    device: torch.device
    clip: object
    module: torch.nn.Module | None = None
    pairs: object | None = None  # pairwise models: the FlowEstimator ([B, 3, H, W] x2 -> [B, 2, H, W]), else None

    @torch.no_grad()
    def __call__(self, frames) -> np.ndarray | torch.Tensor:
        from daflow.inference import clip_pair_flows

        as_numpy = not isinstance(frames, torch.Tensor)
        x = torch.as_tensor(np.asarray(frames)) if as_numpy else frames
        if x.ndim != 4 or x.shape[-1] != 3 or x.shape[0] < 2:
            raise ValueError(f"frames must be [F, H, W, 3] RGB with F >= 2, got {tuple(x.shape)}")
        if x.dtype != torch.uint8:
            raise ValueError(f"frames must be uint8 (0..255), got {x.dtype}")
        flows, _ = clip_pair_flows(self.clip, x.cpu().numpy(), device=self.device)
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


def load_model(
    name_or_path: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    weights=None,
    iters: int | None = None,
    random_init: bool = False,
    step: int | str = 0,
    seed: int = 0,
    dit4sr=None,
    vae=None,
    null_prompt=None,
    **options,
) -> FlowModel:
    """Load any flow model (module docstring)."""
    from daflow.inference import daflow_estimator, pairwise
    from daflow.models.catalog import FLOW_MODELS
    from daflow.models.registry import build_flow_model

    device = torch.device(device)
    name = str(name_or_path)
    path = Path(name_or_path)
    if name not in FLOW_MODELS and name not in DAFLOW_NAMES:
        if path.is_dir():
            kind = _from_config(path)
            if kind is None:
                raise ValueError(
                    f"{path}: not a model folder of this package (no config.json with _class_name "
                    "DAFlow, RAFT or DISRefiner)"
                )
            weights_file = {
                "dis-raft": "raft.safetensors",
                "raft": "raft.safetensors",
                "raft-small": "raft.safetensors",
            }
            name, weights = kind, (path if kind == "daflow" else path / weights_file[kind])
        elif path.is_file():
            name, weights = detect_checkpoint(path), path
        else:
            raise ValueError(
                f"{name!r} is neither a model name ({', '.join([*FLOW_MODELS, *DAFLOW_NAMES])}) nor an "
                "existing weights file or model folder"
            )
    if name in DAFLOW_NAMES:
        model = load_daflow(
            name,
            weights,
            device=device,
            random_init=random_init,
            dit4sr=dit4sr,
            vae=vae,
            null_prompt=null_prompt,
            seed=seed,
            **options,
        )
        clip = daflow_estimator(model, step=step, iters=iters or 20, seed=seed)
        return FlowModel(name, clip.description, device, clip, model)
    estimator = build_flow_model(
        name, weights, iters=iters, device=device, random_init=random_init, seed=seed, **options
    )
    return FlowModel(
        name, estimator.description, estimator.device, pairwise(estimator), estimator.module, pairs=estimator
    )


def load_daflow(
    name: str = "daflow",
    weights=None,
    *,
    device="cpu",
    dtype: torch.dtype = torch.float32,
    corr_mode: str = "auto",
    random_init: bool = False,
    preset: str = "tiny",
    seed: int = 0,
    dit4sr=None,
    vae=None,
    null_prompt=None,
):
    """The DA-Flow module itself (:class:`~daflow.models.daflow.DAFlow`): ``daflow-tiny`` (bundled), ``daflow`` with
    ``weights`` (a ``daflow train flow`` model folder; ``dit4sr``/``vae``/``null_prompt`` override its backbone), or
    random weights at ``preset`` size. ``dtype`` is the DiT's (the VAE stays float32); ``corr_mode`` RAFT's."""
    from daflow.models import bundled
    from daflow.models.daflow import DAFlow

    device = torch.device(device)
    if name == "daflow-tiny":
        if weights is not None or random_init:
            raise ValueError("daflow-tiny is the bundled model; use 'daflow' with weights or random_init")
        model = bundled.load_daflow_tiny(device=device)
    elif random_init:
        if weights is not None:
            raise ValueError("give either weights or random_init, not both")
        model = DAFlow(preset, seed=seed)
        model.backbone.transformer.to(dtype)
        model = model.to(device).eval()
    elif weights is None:
        raise ValueError(
            "'daflow' needs weights (a folder written by daflow train flow); the bundled model is 'daflow-tiny'"
        )
    else:
        model = DAFlow.load(weights, dit4sr=dit4sr, vae=vae, null_prompt=null_prompt, dtype=dtype, device=device)
    model.raft.corr_mode = corr_mode
    return model.eval()


@dataclass
class EvalResult:
    """One dataset's scores: EPE and the percentages of pixels with error above 1, 3 and 5 px (paper §5.1)."""

    dataset: str
    spec: str
    epe: float
    px1: float
    px3: float
    px5: float
    pairs: int
    seconds_per_pair: float

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def evaluate(
    model, data_spec: str, *, max_samples: int | None = None, reduce: str = "image", progress: bool = False
) -> list[EvalResult]:
    """Score ``model`` (a :class:`FlowModel` or anything :func:`load_model` takes) on every dataset of
    ``data_spec`` (``daflow evaluate``'s grammar, e.g. ``sintel-final:ROOT`` or
    ``synthetic:large-motion?n=8&degrade=realbasicvsr``). Pairwise models see every pair; DA-Flow sees 3-frame
    windows that share their boundary frame, as ``daflow estimate`` runs it."""
    import time

    from tqdm import tqdm

    from daflow.data.specs import build_eval_sets
    from daflow.flow.metrics import FlowMetrics

    model = model if isinstance(model, FlowModel) else load_model(model)
    chunk = model.clip.chunk
    results = []
    for eval_set in build_eval_sets(data_spec, num_frames=chunk, stride=max(chunk - 1, 1)):
        metrics = FlowMetrics(spring_min=eval_set.spring_min)
        n = len(eval_set.dataset) if max_samples is None else min(max_samples, len(eval_set.dataset))
        if n == 0:
            raise ValueError(f"{eval_set.label}: the dataset is empty")
        seconds = 0.0
        for i in tqdm(range(n), desc=eval_set.label, disable=not progress, leave=False):
            sample = eval_set.dataset[i]
            if sample.flow is None:
                raise ValueError(f"{eval_set.label}: sample {sample.meta} has no ground truth; evaluation needs it")
            t = time.perf_counter()
            flows = model(np.ascontiguousarray(sample.frames))
            seconds += time.perf_counter() - t
            metrics.update(flows, sample.flow, sample.valid)
        m = metrics.compute(reduce=reduce)
        results.append(
            EvalResult(
                eval_set.label,
                eval_set.spec,
                m["epe"],
                m["1px"],
                m["3px"],
                m["5px"],
                metrics.count,
                seconds / max(metrics.count, 1),
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
            raise ValueError("random_init and dit4sr/vae exclude each other")
        backbone = DiffusionBackbone.from_preset(preset, seed=seed)
        backbone.transformer.to(dtype)  # the VAE stays float32, as from_pretrained keeps it
        backbone.origin = "random"
        return backbone.to(device), f"random {preset} DiT4SR and VAE weights: for smoke tests only"
    if dit4sr or vae or not bundled_fallback:
        if not (dit4sr and vae):
            raise ValueError("give both dit4sr and vae (the published DiT4SR transformer and the SD3.5 VAE)")
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
