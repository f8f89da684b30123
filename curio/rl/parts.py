"""The RL stage's cheap parts, built from the config in one place (torch the only heavy import), so
that ``rl.py`` checks them before Hydra starts and ``rl()`` builds them first."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from curio.cli import build, config_errors
from curio.components import check_common_parts
from curio.errors import ConfigError, check_count
from curio.evaluation.sampling import SamplingParams
from curio.rl.policy_loss import PolicyLoss
from curio.rl.rewards import Reward


def build_sampling(cfg: DictConfig) -> SamplingParams:
    """The rollout's sampling: ``rl.sampling`` with ``n = rl.group_size``."""
    with config_errors("rl.sampling"):
        try:
            params = SamplingParams(n=cfg.rl.group_size, seed=cfg.seed,
                                    **OmegaConf.to_container(cfg.rl.sampling, resolve=True))
        except ValueError as err:  # SamplingParams names its keys as eval.yaml's sampling.*
            message = str(err).replace("sampling.n=", "rl.group_size=")
            raise ConfigError(message if message.startswith("rl.") else f"rl.{message}") from err
    if params.greedy:
        raise ConfigError("rl.sampling.temperature=0: a group of greedy responses is one response G times "
                          "(no advantage to learn from); use a temperature > 0 (the authors' 1.0)")
    return params


def build_rl_parts(cfg: DictConfig) -> tuple[PolicyLoss, Reward, SamplingParams]:
    """The policy loss, the reward and the rollout's sampling. The loss scores tokens under the
    distribution the rollout samples from, so it takes the sampling temperature."""
    sampling = build_sampling(cfg)
    loss = build(cfg.rl.loss, "rl.loss", temperature=sampling.temperature)
    return loss, build(cfg.rl.reward, "rl.reward"), sampling


def check_mini_batches(cfg: DictConfig, world_size: int) -> None:
    """A rollout step's sequences on a rank must split into ``rl.mini_batches`` equal optimizer
    steps: then each step holds the same sequences whatever ``rl.micro_batch_size`` is, and a
    rollout step is exactly ``mini_batches`` x ``updates_per_rollout`` optimizer steps (the schedule
    and the sampling seed count on it)."""
    mini_batches, group_size = cfg.rl.mini_batches, cfg.rl.group_size
    check_count("rl.mini_batches", mini_batches)
    prompts = cfg.rl.prompts_per_step // world_size
    sequences = prompts * group_size
    if sequences % mini_batches:
        divisors = [d for d in range(1, sequences + 1) if sequences % d == 0]
        raise ConfigError(f"rl.mini_batches={mini_batches}: a rollout step has {sequences} sequences per rank "
                          f"({prompts} prompt(s) x rl.group_size={group_size}), which do not split into "
                          f"{mini_batches} equal optimizer steps; use one of {', '.join(map(str, divisors))}")


def check_rl_parts(cfg: DictConfig) -> None:
    """``rl.py``'s command-line check: the RL parts and what every run checks; the mini-batches too
    when the config fixes the number of ranks (``rl()`` checks them again once Lightning has)."""
    build_rl_parts(cfg)
    check_common_parts(cfg)
    devices, nodes = cfg.trainer.get("devices"), cfg.trainer.get("num_nodes", 1)
    if isinstance(devices, int) and isinstance(nodes, int) and devices > 0 and nodes > 0:
        if cfg.rl.prompts_per_step % (devices * nodes) == 0:  # else the prompts' own check says so
            check_mini_batches(cfg, devices * nodes)
