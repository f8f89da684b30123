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

from curio.config import CONF_DIR, check_group_overrides, check_override_keys, validate_config
from curio.errors import UserError

log = logging.getLogger("curio")


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    from curio.train import train  # heavy imports after Hydra has parsed the command line

    try:
        metrics = train(cfg)
    except Exception as err:
        user_error = _user_error(err)
        if user_error is None:
            raise
        log.error("error: %s", user_error)
        sys.exit(2)
    return metrics.get("val/loss")


def _user_error(err: BaseException | None) -> UserError | None:
    """The UserError behind ``err``, if any (Hydra's instantiate wraps constructor errors)."""
    while err is not None:
        if isinstance(err, UserError):
            return err
        err = err.__cause__ or err.__context__
    return None


def precheck(argv: list[str]) -> None:
    """Typos in overrides fail here in about a second, as one line, before anything is imported
    or loaded. Sweeps (``-m``) get the group check only: their values are lists."""
    check_group_overrides(argv)
    if any(a in ("-m", "--multirun") for a in argv) or any(a.startswith("-") for a in argv):
        return
    validate_config(check_override_keys(argv))


if __name__ == "__main__":
    try:
        precheck(sys.argv[1:])
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    main()
