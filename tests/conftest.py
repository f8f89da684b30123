"""Test-wide settings: never touch the network, the GPU or W&B; keep torch deterministic and small."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


from pathlib import Path  # noqa: E402

from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.core.global_hydra import GlobalHydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import open_dict  # noqa: E402

from curio.config import CONF_DIR, ROOT  # noqa: E402

ASSETS = Path(__file__).parent / "assets"
SUMS = ASSETS / "sums_prompt_response.jsonl"

#: Overrides that make a real training run take seconds on a laptop CPU.
FAST = [
    "model=tiny",
    "data=jsonl",
    f"data.train={SUMS}",
    "data.val_size=8",
    "data.micro_batch_size=4",
    "optim.lr=3e-3",
    "sched.warmup_steps=2",
    "trainer.max_steps=4",
    "trainer.val_check_interval=2",
    "trainer.enable_model_summary=false",
    "callbacks.model_checkpoint.every_n_train_steps=2",
    "~callbacks.progress_bar",
]


def compose_config(overrides: list[str], output_dir: Path | str | None = None, config_name: str = "train"):
    """Compose ``conf/<config_name>.yaml`` as ``train.py`` would, with the run dir at ``output_dir``."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]  # as in a real run: Hydra's own node lives in HydraConfig only
        if output_dir is not None:
            cfg.paths.output_dir = str(output_dir)
    return cfg


@pytest.fixture
def compose_cfg():
    return compose_config


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT
