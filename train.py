"""Fine-tune a causal LM: ``python train.py [group=option ...] [key=value ...]``.

Examples:
    python train.py                                   # the embedded default, on CPU, offline
    python train.py loss=curio temp=entropy_guided    # CurioSFT with the authors' settings
    python train.py -m loss=ce optim.lr=1e-5,2e-5     # a sweep: one run dir per job
"""

import sys

import hydra
from omegaconf import DictConfig

from curio.cli import run_precheck, run_task
from curio.config import CONF_DIR, check_group_overrides, check_override_keys, validate_config


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    from curio.train import train  # heavy imports after Hydra has parsed the command line

    return run_task(train, cfg).get("val/loss")


def precheck(argv: list[str]) -> None:
    """Typos in overrides fail here in about a second, as one line, before anything is imported
    or loaded. Sweeps (``-m``) get the group check only: their values are lists."""
    check_group_overrides(argv)
    if any(a in ("-m", "--multirun") for a in argv) or any(a.startswith("-") for a in argv):
        return
    validate_config(check_override_keys(argv))


if __name__ == "__main__":
    run_precheck(precheck, sys.argv[1:])
    main()
