"""The RL stage's cheap parts, built from the config in one place (torch the only heavy import), so
that ``rl.py`` checks them before Hydra starts and ``rl()`` builds them first."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from curio.cli import build, config_errors
from curio.components import check_common_parts
from curio.errors import ConfigError
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


def check_rl_parts(cfg: DictConfig) -> None:
    """``rl.py``'s command-line check: the RL parts and what every run checks."""
    build_rl_parts(cfg)
    check_common_parts(cfg)
