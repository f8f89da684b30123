"""Fine-tune a causal LM: ``python train.py [group=option ...] [key=value ...]``.

Examples:
    python train.py                                   # the embedded default, on CPU, offline
    python train.py loss=curio temp=entropy_guided    # CurioSFT with the authors' settings
    python train.py -m loss=ce optim.lr=1e-5,2e-5     # a sweep: one run dir per job
    python train.py experiment=authors_qwen2_5_math_7b    # the authors' run (8 GPUs)
"""

import sys

import hydra
from omegaconf import DictConfig

from curio.cli import run_precheck, run_task
from curio.config import CONF_DIR, check_group_overrides, check_mandatory_keys, check_override_keys, check_run_dir


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    from curio.train import train  # heavy imports after Hydra has parsed the command line

    return run_task(train, cfg).get("val/loss")


def precheck(argv: list[str]) -> None:
    """Mistakes fail here in seconds, as one line, before Lightning, the data or the model load:
    typos in overrides (before anything is imported), then a bad value (the cheap parts of the run
    are built once, with torch the only heavy import). Sweeps (``-m``) get the typo check only:
    their values are lists."""
    check_group_overrides(argv)
    if any(a in ("-m", "--multirun") for a in argv) or any(a.startswith("-") for a in argv):
        return
    cfg = check_override_keys(argv)
    check_mandatory_keys(cfg)
    check_run_dir(argv, cfg)
    from curio.components import check_cheap_parts

    check_cheap_parts(cfg)


if __name__ == "__main__":
    run_precheck(precheck, sys.argv[1:])
    main()
