"""Sampled evaluation of a causal LM: ``python eval.py [model=<folder|hub id>] [key=value ...]``.

Examples:
    python eval.py                                        # newest training export, tiny world tests
    python eval.py model=outputs/train/runs/<run>/hf benchmarks=[math500,aime24] limit=4 sampling.n=2
    python eval.py eval=authors model=<export> generation.backend=vllm   # the authors' protocol
    python eval.py resume=true hydra.run.dir=outputs/eval/runs/<run>    # finish an interrupted run
"""

import sys

import hydra
from omegaconf import DictConfig

from curio.cli import run_precheck, run_task
from curio.config import CONF_DIR, check_group_overrides, check_override_keys, check_run_dir
from curio.evaluation.eval_config import check_eval_config, model_shorthand


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="eval")
def main(cfg: DictConfig) -> float | None:
    from curio.evaluation.run import evaluate  # heavy imports after Hydra has parsed the command line

    results = run_task(evaluate, cfg)
    # For sweepers: the in-distribution mean accuracy (else the first group's).
    groups = results["groups"]
    group = groups.get("id") or next(iter(groups.values()), {})
    return group.get("accuracy")


def precheck(argv: list[str]) -> list[str]:
    """Rewrite ``model=<path>`` to ``model.path=<path>`` and fail fast, as one line, on typos in
    overrides, unknown benchmarks, impossible values and a missing model folder. Returns the
    arguments to hand to Hydra. Sweeps (``-m``) get the group check only."""
    argv = [model_shorthand(a) for a in argv]
    check_group_overrides(argv)
    if any(a.startswith("-") for a in argv):
        return argv
    cfg = check_override_keys(argv, config_name="eval")
    check_eval_config(cfg)
    check_run_dir(argv, cfg)
    return argv


if __name__ == "__main__":
    sys.argv[1:] = run_precheck(precheck, sys.argv[1:])
    main()
