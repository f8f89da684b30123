"""The RL stage (GRPO) from an SFT export: ``python rl.py [group=option ...] [key=value ...]``.

Examples:
    python rl.py                                      # the newest SFT export, tiny world prompts, CPU
    python rl.py model=outputs/train/runs/<run>/hf    # another start model
    python rl.py rl=dapo                              # DAPO's loss choices
    python rl.py rl=authors model=<export> prompts=openr1_math prompts.problems.path=<parquet>
"""

import sys

import hydra
from omegaconf import DictConfig

from curio.cli import run_precheck, run_task, user_error
from curio.config import (
    CONF_DIR,
    check_group_overrides,
    check_mandatory_keys,
    check_override_keys,
    check_run_dir,
    group_options,
)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="rl")
def main(cfg: DictConfig) -> float | None:
    from curio.rl.run import rl  # heavy imports after Hydra has parsed the command line

    return run_task(rl, cfg).get("train/reward_mean")


def model_shorthand(argument: str) -> str:
    """``model=<folder or hub id>`` -> ``model.path=<it>`` (the export option), unless it names a
    model config (``model=qwen2_5_math_1_5b``)."""
    if argument.startswith("model=") and argument[6:] not in group_options("model"):
        return f"model.path={argument[6:]}"
    return argument


def precheck(argv: list[str]) -> list[str]:
    """Typos, then bad values, as one line before anything heavy loads (as for train.py); also
    that there is a start model (the newest SFT export, unless model= names one)."""
    argv = [model_shorthand(a) for a in argv]
    check_group_overrides(argv)
    if any(a.startswith("-") for a in argv):
        return argv
    cfg = check_override_keys(argv, config_name="rl")
    check_mandatory_keys(cfg)
    check_run_dir(argv, cfg)
    try:
        cfg.model.get("path")  # the newest export, resolved now: no export yet is one line
    except Exception as err:
        found = user_error(err)
        if found is None:
            raise
        raise found from err
    from curio.rl.parts import check_rl_parts

    check_rl_parts(cfg)
    return argv


if __name__ == "__main__":
    sys.argv[1:] = run_precheck(precheck, sys.argv[1:])
    main()
