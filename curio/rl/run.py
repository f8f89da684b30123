"""Build the RL stage from the composed config and fit: the body of ``rl.py``.

Cheapest first, as for SFT: the loss, reward, sampling, optimizer and schedule, then the trainer,
the tokenizer and every prompt, and only then the policy (and its reference copy).
"""

from __future__ import annotations

import logging
import warnings
from functools import partial
from typing import Any

from omegaconf import DictConfig, OmegaConf

from curio.cli import build
from curio.components import build_optimizer, build_scheduler
from curio.lora import LoraSettings
from curio.rl.module import GRPOModule
from curio.rl.parts import build_rl_parts, check_mini_batches
from curio.teacher import FrozenTeacher
from curio.train import build_model, fit, optimizer_steps, start_run

log = logging.getLogger(__name__)


def build_reference() -> FrozenTeacher:
    """The KL's reference: the start model, frozen (with LoRA, the policy with its adapter off: no
    second model). Its logits are projected as the policy's own are, in the compute dtype, not in
    float32 as a CurioSFT teacher's: under bf16 the two projections' log-probabilities differ by some
    1e-2 per token, which would put a KL between a policy and the weights it still equals."""
    return FrozenTeacher(fp32_logits=False)


#: ``rl.*`` keys handed to :class:`~curio.rl.module.GRPOModule` as they are.
MODULE_KEYS = ("mini_batches", "updates_per_rollout", "micro_batch_size", "scale_by_std", "aggregation",
               "max_grad_norm", "max_consecutive_skips")


def rl(cfg: DictConfig) -> dict[str, Any]:
    """Train ``cfg.model`` with the RL algorithm ``cfg.rl`` on ``cfg.prompts``; the final metrics."""
    loss, reward, sampling = build_rl_parts(cfg)
    lora = LoraSettings.from_config(OmegaConf.select(cfg, "model.lora"))
    rollout = build(cfg.rollout, "rollout")
    optimizer = build_optimizer(cfg)
    scheduler = build_scheduler(cfg)
    resolved, trainer, tokenizer, datamodule = start_run(cfg, "prompts")
    check_mini_batches(cfg, trainer.world_size)
    # A training batch is a rollout step: mini_batches x updates_per_rollout optimizer steps.
    steps = optimizer_steps(trainer, datamodule.steps_per_epoch(),
                            per_batch=cfg.rl.mini_batches * cfg.rl.updates_per_rollout)
    if scheduler is not None:
        scheduler = partial(scheduler, total_steps=steps)

    model = build_model(cfg, tokenizer, lora)
    reference = build_reference() if cfg.rl.reference else None
    module = GRPOModule(model, loss, optimizer, reward, sampling, rollout, scheduler=scheduler, reference=reference,
                        **{key: cfg.rl[key] for key in MODULE_KEYS})
    # Two Lightning warnings about what is meant here: the policy trains in eval mode (no dropout, so
    # that the trainer scores tokens as the sampler drew them), and a checkpoint holds the weights
    # after the training step's optimizer steps (what resuming needs, with the optimizer's state).
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode at the start of training")
    warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization")
    return fit(trainer, module, datamodule, cfg, resolved, steps)
