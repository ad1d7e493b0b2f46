"""The control of the restorer's fidelity head: the same head, data, steps and seed, trained blind to the diffusion
output (``use_prior=False``), so that ``benchmarks/restoration.py --blind-head`` can show what the diffusion prior
adds to the shipped restorer.

    .venv/bin/python benchmarks/fidelity_control.py RUN   # RUN: the `daflow train recipe restore` run folder

Writes ``RUN/fidelity_blind/`` (resumable; the head in ``RUN/fidelity_blind/fidelity``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch

from daflow.models.fidelity import FidelityConfig
from daflow.recipe.presets import RECIPE_PRESETS
from daflow.recipe.run import Recipe
from daflow.train.fidelity import FidelityTrainConfig, train_fidelity


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--preset", default="restore")
    args = ap.parse_args()
    torch.set_num_threads(2)
    recipe = Recipe(args.run, RECIPE_PRESETS[args.preset], progress=True)
    shipped = json.loads((args.run / "fidelity" / "train_fidelity.json").read_text())
    keep = {f.name for f in dataclasses.fields(FidelityTrainConfig)}
    config = FidelityTrainConfig(**{k: (tuple(v) if k == "crop" else v) for k, v in shipped.items() if k in keep})
    backbone = recipe.backbone(recipe.layout.transformer("one_step"))
    head = FidelityConfig(**{**shipped["head"], "use_prior": False})
    dataset, spec = recipe.prepared_data(backbone, config.sigma, head.neighbours > 0)  # the shipped head's own data
    summary = train_fidelity(
        dataset,
        args.run / "fidelity_blind",
        config,
        device=recipe.device,
        head_config=head,
        data_spec=spec,
    )
    print(json.dumps(summary, indent=2, default=str))


if __name__ == "__main__":
    main()
