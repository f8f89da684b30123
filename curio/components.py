"""The cheap parts of a training run, built from the config in one place: the objective (the loss
and, when the loss reads one, its teacher), the optimizer and the learning-rate schedule.

``train()`` builds them before Lightning, the data or the model, and ``train.py`` builds them once
more before Hydra starts (torch is the only heavy import). Each constructor checks its own
settings, so a bad value fails in seconds, as one line naming the key.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from curio.aggregation import Aggregation
from curio.cli import build, config_errors
from curio.config import group_options
from curio.data.sources import check_source
from curio.dtypes import parse_dtype
from curio.errors import ConfigError
from curio.losses import TokenLoss
from curio.lora import LoraSettings
from curio.resume import check_ckpt_path
from curio.teacher import Teacher

log = logging.getLogger(__name__)

#: Config groups that only a loss reading a teacher uses (through ``loss.temperature: ${temp}``).
TEACHER_GROUPS = ("teacher", "temp")


def build_objective(cfg: DictConfig) -> tuple[TokenLoss, Teacher | None]:
    """``cfg.loss``, and ``cfg.teacher`` if and only if the loss reads a teacher.

    This is the one place that decides whether a run has a teacher.
    """
    loss = build(cfg.loss, "loss")
    if not loss.needs_teacher:
        ignored = [o for o in _overrides() if o.split("=", 1)[0].lstrip("+~").split(".")[0] in TEACHER_GROUPS]
        if ignored:
            log.warning("%s reads no teacher: ignoring %s", type(loss).__name__, " ".join(ignored))
        return loss, None
    if not cfg.get("teacher"):
        raise ConfigError(f"{type(loss).__name__} reads a teacher, but the config has none: choose "
                          f"teacher= one of {', '.join(group_options('teacher'))}")
    return loss, build(cfg.teacher, "teacher")


def build_optimizer(cfg: DictConfig) -> Callable[..., torch.optim.Optimizer]:
    """``params -> Optimizer`` from ``cfg.optim`` (a ``_partial_``), checked now.

    The optimizer checks its settings (lr, betas, eps, weight decay) when it is built, which
    the training loop does only after the model has loaded: build one on a probe parameter here.
    """
    factory = build(cfg.optim, "optim")
    with config_errors("optim"):
        factory([torch.nn.Parameter(torch.zeros(1))])
    return factory


def build_scheduler(cfg: DictConfig) -> Callable[..., Any] | None:
    """``(optimizer, total_steps) -> LRScheduler`` from ``cfg.sched`` (or None), checked now."""
    if not cfg.get("sched"):
        return None
    factory = build(cfg.sched, "sched")
    with config_errors("sched"):
        factory(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0), total_steps=1)
    return factory


def check_devices(trainer: DictConfig) -> None:
    """The devices the trainer asks for exist here, before Lightning starts processes on them:
    GPUs for ``trainer=gpu|ddp|fsdp``, and no more CPU processes than cores."""
    accelerator, devices = str(trainer.get("accelerator", "auto")), trainer.get("devices", "auto")
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(f"trainer.accelerator={accelerator}: no CUDA GPU is visible here; use trainer=cpu, or "
                          "trainer.accelerator=cpu to run ddp/fsdp as CPU processes")
    if accelerator == "cpu" and isinstance(devices, int):
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        if devices > cores:
            raise ConfigError(f"trainer.devices={devices}: {devices} CPU processes on {cores} core(s) would only "
                              f"contend; use at most {cores}")


def check_cheap_parts(cfg: DictConfig) -> None:
    """``train.py``'s command-line check: build the objective and :func:`check_common_parts`."""
    build_objective(cfg)
    LoraSettings.from_config(OmegaConf.select(cfg, "model.lora"))
    Aggregation(OmegaConf.select(cfg, "module.aggregation", default="step_token_mean"))
    check_common_parts(cfg)


def check_common_parts(cfg: DictConfig) -> None:
    """What ``train.py`` and ``rl.py`` both check before Hydra starts: build the optimizer and the
    schedule once, and check what would otherwise fail only after the data has been read (the
    model's dtype), after Lightning has loaded (a data file or checkpoint that is not there), or
    once processes have started (devices that do not exist)."""
    build_optimizer(cfg)
    build_scheduler(cfg)
    parse_dtype(OmegaConf.select(cfg, "model.net.dtype", default=None), "model.net.dtype")
    for key in ("data.train", "data.val"):
        source = OmegaConf.select(cfg, key, default=None)
        if isinstance(source, str):
            check_source(source, key)
    check_ckpt_path(cfg.get("ckpt_path"))
    check_devices(cfg.trainer)


def _overrides() -> list[str]:
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
