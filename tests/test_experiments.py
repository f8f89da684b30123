"""Every experiment file composes and resolves; those whose model and data ship with the project
run a couple of steps (lightning-hydra-template style). The hub recipes' settings are checked one
by one in tests/test_recipes.py."""

import math
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from curio.config import CONF_DIR, group_options
from curio.data.sources import is_local
from curio.train import train

EXPERIMENTS = group_options("experiment")
SMOKE = [
    "trainer.max_steps=2",
    "trainer.val_check_interval=2",
    "+trainer.limit_val_batches=1",
    "trainer.enable_model_summary=false",
    "~callbacks.progress_bar",
    "callbacks.hf_export.dirname=hf",  # never overwrite shipped assets from a test
]


def runs_offline(experiment: str) -> bool:
    """Model and data need no hub: a config-built model or a local folder, and local data files."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        cfg = compose("train", overrides=[f"experiment={experiment}"])
    model = cfg.model.net.get("name_or_path")
    return (model is None or is_local(model)) and is_local(cfg.data.train)


OFFLINE = [e for e in EXPERIMENTS if runs_offline(e)]


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes_and_resolves(tmp_path, experiment, compose_cfg):
    cfg = compose_cfg([f"experiment={experiment}"], tmp_path)
    OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)


def test_only_the_hub_recipes_are_left_out_of_the_smoke_runs():
    assert sorted(set(EXPERIMENTS) - set(OFFLINE)) == ["authors_qwen2_5_math_7b", "qwen2_5_math_1_5b_1gpu"]


@pytest.mark.parametrize("experiment", OFFLINE)
def test_experiment_smoke_runs(tmp_path, experiment, compose_cfg):
    cfg = compose_cfg([f"experiment={experiment}", *SMOKE], tmp_path)
    metrics = train(cfg)
    assert math.isfinite(metrics["train/loss"])  # PSFT's -min(r, clip(r)) is negative by design
    assert (tmp_path / "hf" / "config.json").is_file()
