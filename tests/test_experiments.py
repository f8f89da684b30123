"""Every experiment file composes and runs a couple of steps (lightning-hydra-template style)."""

import pytest

from curio.config import group_options
from curio.train import train
from tests.conftest import compose_config

EXPERIMENTS = group_options("experiment")
SMOKE = [
    "trainer.max_steps=2",
    "trainer.val_check_interval=2",
    "+trainer.limit_val_batches=1",
    "trainer.enable_model_summary=false",
    "~callbacks.progress_bar",
    "callbacks.hf_export.dirname=hf",  # never overwrite shipped assets from a test
]


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_smoke_runs(tmp_path, experiment):
    cfg = compose_config([f"experiment={experiment}", *SMOKE], tmp_path)
    metrics = train(cfg)
    assert metrics["train/loss"] > 0
    assert (tmp_path / "hf" / "config.json").is_file()
