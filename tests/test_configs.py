"""One rule for reading configs: unknown keys are refused with a clear message, everywhere."""

import pytest

from daflow.configs import config_from_dict
from daflow.models.daflow import DAFLOW_PRESETS, DAFlowConfig
from daflow.models.dit4sr import DiT4SRConfig
from daflow.models.sea_raft import SEARAFTConfig
from daflow.models.vae import VAEConfig

# the key set of princeton-vl/SEA-RAFT config/train/Tartan-C-T-TSKH-spring540x960-M.json
SPRING_M = {
    "name": "Tartan-C-T-TSKH-spring540x960-M",
    "dataset": "spring",
    "gpus": [0, 1],
    "use_var": True,
    "var_min": 0,
    "var_max": 10,
    "pretrain": "resnet34",
    "initial_dim": 64,
    "block_dims": [64, 128, 256],
    "radius": 4,
    "dim": 128,
    "num_blocks": 2,
    "iters": 4,
    "image_size": [540, 960],
    "scale": -1,
    "batch_size": 32,
    "epsilon": 1e-8,
    "lr": 4e-4,
    "wdecay": 1e-5,
    "dropout": 0,
    "clip": 1.0,
    "gamma": 0.85,
    "num_steps": 120000,
    "restore_ckpt": None,
    "coarse_config": None,
}


def test_published_formats_load_and_typos_are_refused():
    assert SEARAFTConfig.from_json(SPRING_M).block_dims == (64, 128, 256)
    with pytest.raises(ValueError, match=r"SEA-RAFT config: unknown key\(s\) \['radious'\]"):
        SEARAFTConfig.from_json({**SPRING_M, "radious": 4})
    vae = {
        "_class_name": "AutoencoderKL",
        "_diffusers_version": "0.31.0",
        "latents_mean": None,
        "latents_std": None,
        "force_upcast": True,
        "in_channels": 3,
        "block_out_channels": [128, 256, 512, 512],
    }
    assert VAEConfig.from_json(vae).block_out_channels == (128, 256, 512, 512)
    with pytest.raises(ValueError, match="VAE config: unknown key"):
        VAEConfig.from_json({**vae, "block_out_channel": [8]})
    with pytest.raises(ValueError, match="DiT4SR config: unknown key"):
        DiT4SRConfig.from_json({"_class_name": "SD3Transformer2DModel", "num_layer": 24})
    cfg = DAFLOW_PRESETS["tiny"]
    assert DAFlowConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="DA-Flow config: unknown key"):
        DAFlowConfig.from_dict({**cfg.to_dict(), "block": [1]})


def test_not_an_object():
    with pytest.raises(ValueError, match="expected a JSON object"):
        config_from_dict(VAEConfig, [1, 2], what="VAE config")


def test_training_configs_share_one_settings_object():
    import dataclasses

    from daflow.train.flow import FlowTrainConfig
    from daflow.train.lift import LiftConfig
    from daflow.train.loop import TrainSettings
    from daflow.train.raft import RAFTTrainConfig
    from daflow.train.refine import RefineTrainConfig
    from daflow.train.vae import VAETrainConfig

    shared = {f.name for f in dataclasses.fields(TrainSettings)}
    for cls in (LiftConfig, FlowTrainConfig, RAFTTrainConfig, VAETrainConfig, RefineTrainConfig):
        assert issubclass(cls, TrainSettings) and shared <= {f.name for f in dataclasses.fields(cls)}
        with pytest.raises(ValueError, match="steps must be >= 1"):
            cls(steps=0)
        with pytest.raises(ValueError, match="mixed_precision"):
            cls(mixed_precision="fp8")
