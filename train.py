"""Fine-tune a causal LM: ``python train.py [group=option ...] [key=value ...]``.

Examples:
    python train.py                                   # the embedded default, on CPU, offline
    python train.py loss=curio temp=entropy_guided    # CurioSFT with the authors' settings
    python train.py -m loss=ce optim.lr=1e-5,2e-5     # a sweep: one run dir per job
"""

import logging
import sys

import hydra
from omegaconf import DictConfig

from curio.config import CONF_DIR, check_group_overrides
from curio.errors import UserError

log = logging.getLogger("curio")


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    from curio.train import train  # heavy imports after Hydra has parsed the command line

    try:
        metrics = train(cfg)
    except UserError as err:
        log.error("error: %s", err)
        sys.exit(2)
    return metrics.get("val/loss")


if __name__ == "__main__":
    try:
        check_group_overrides(sys.argv[1:])
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    main()
