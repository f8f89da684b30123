"""Test-wide settings (never touch the network, the GPU or W&B; keep torch deterministic and small)
and the fixtures shared across test folders: composed configs, a fast training setup, tiny models
and tiny-world test sets written to temporary folders."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import json  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.core.global_hydra import GlobalHydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import OmegaConf, open_dict  # noqa: E402

from curio.config import CONF_DIR, ROOT  # noqa: E402

SUMS = Path(__file__).parent / "assets" / "sums_prompt_response.jsonl"


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _compose_config(overrides: list[str], output_dir: Path | str | None = None, config_name: str = "train"):
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]  # as in a real run: Hydra's own node lives in HydraConfig only
        if output_dir is not None:
            cfg.paths.output_dir = str(output_dir)
    return cfg


@pytest.fixture(scope="session")
def compose_cfg() -> Callable[..., object]:
    """``compose_cfg(overrides, output_dir=None, config_name="train")``: ``conf/<config_name>.yaml``
    composed as ``train.py`` (or ``eval.py``) would, with the run dir at ``output_dir``."""
    return _compose_config


@pytest.fixture(scope="session")
def sums_jsonl() -> Path:
    """48 prompt/response rows of small sums: the training data of the fast runs."""
    return SUMS


@pytest.fixture(scope="session")
def fast(sums_jsonl) -> list[str]:
    """Overrides that make a real training run take seconds on a laptop CPU (do not mutate)."""
    return [
        "model=tiny",
        "data=jsonl",
        f"data.train={sums_jsonl}",
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


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


def _tiny_model(seed: int = 0):
    from curio.models import build_causal_lm, byte_level_tokenizer

    torch.manual_seed(seed)
    config = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "model" / "tiny.yaml").net.config)
    return build_causal_lm(config, dtype="float32"), byte_level_tokenizer("chatml")


@pytest.fixture(scope="session")
def tiny_model() -> Callable[..., tuple]:
    """``tiny_model(seed=0) -> (model, tokenizer)``: the ``model=tiny`` network with fixed random
    weights and its byte-level tokenizer."""
    return _tiny_model


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A Hugging Face folder (weights, config, tokenizer, chat template) of the tiny model."""
    folder = tmp_path_factory.mktemp("tiny_model")
    model, tokenizer = _tiny_model()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_world_tests(tmp_path_factory) -> Path:
    """An assets folder holding ``tiny_world/test_{id,ood}.jsonl`` (6 rows each) in the tiny
    world's row format; use it as ``paths.assets_dir``."""
    assets_dir = tmp_path_factory.mktemp("assets")
    folder = assets_dir / "tiny_world"
    folder.mkdir(parents=True)
    for split, op in (("test_id", "+"), ("test_ood", "*")):
        with (folder / f"{split}.jsonl").open("w") as out:
            for i in range(6):
                expression = f"{i}{op}{i + 2}"
                messages = [{"role": "system", "content": "Solve step by step."},
                            {"role": "user", "content": f"Compute {expression}."}]
                row = {"problem": expression, "answer": str(eval(expression)), "messages": messages}
                out.write(json.dumps(row) + "\n")
    return assets_dir
