"""Build everything from the composed config and fit: the body of ``train.py``."""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import get_class
from lightning.pytorch.accelerators import CPUAccelerator
from lightning.pytorch.strategies import ModelParallelStrategy
from omegaconf import DictConfig, OmegaConf

from curio.checkpoint_io import AtomicCheckpointIO
from curio.cli import build, save_run_config
from curio.components import build_objective, build_optimizer, build_scheduler, check_devices
from curio.cpu_allocator import keep_freed_memory
from curio.errors import ConfigError
from curio.lora import LoraSettings, apply_lora
from curio.module import SFTModule
from curio.resume import resolve_ckpt_path

log = logging.getLogger(__name__)
# Lightning attaches its own console handler; Hydra's root handlers already print (and file) its
# records, so drop Lightning's to avoid every line showing twice.
logging.getLogger("lightning.pytorch").handlers.clear()


def _is_sharded(strategy: Any) -> bool:
    target = strategy.get("_target_") if isinstance(strategy, DictConfig) else None
    return target is not None and issubclass(get_class(target), ModelParallelStrategy)


def optimizer_steps(trainer: L.Trainer, batches_per_epoch: int, per_batch: int = 1) -> int:
    """The run's length in optimizer steps: the sooner of ``max_steps`` and ``max_epochs``.
    The schedule's horizon, and what the run must have trained when it ends
    (:func:`curio.callbacks.hf_export.check_ran_to_the_end`); known before the model loads.

    ``batches_per_epoch``: an epoch's units of training, each ``per_batch`` optimizer steps (SFT:
    the optimizer steps themselves; RL: rollout steps, of several optimizer steps each). A unit is
    never cut short, so ``max_steps`` rounds up to whole units."""
    limit = trainer.limit_train_batches
    if not (isinstance(limit, float) and limit == 1.0):
        raise ConfigError(f"trainer.limit_train_batches={limit}: curio's runs train whole epochs (the schedule's "
                          "horizon and the run's length count them); shorten a run with trainer.max_steps")
    by_epochs = batches_per_epoch * per_batch * trainer.max_epochs if trainer.max_epochs not in (None, -1) else None
    by_steps = -(-trainer.max_steps // per_batch) * per_batch if trainer.max_steps not in (None, -1) else None
    candidates = [n for n in (by_epochs, by_steps) if n is not None]
    if not candidates:
        raise ConfigError("trainer.max_steps and trainer.max_epochs are both unset: the run would never end")
    if min(candidates) < 1:
        raise ConfigError(f"trainer.max_steps={trainer.max_steps}, trainer.max_epochs={trainer.max_epochs}: the run "
                          "would take no optimizer step")
    return min(candidates)


def check_val_interval(trainer: L.Trainer, batches_per_epoch: int, train_rows: int) -> None:
    """A whole-number ``trainer.val_check_interval`` counts training batches within an epoch, so it
    cannot exceed an epoch's (Lightning says so only after the model has loaded)."""
    interval = trainer.val_check_interval
    if (isinstance(interval, int) and interval > batches_per_epoch
            and trainer.check_val_every_n_epoch is not None and trainer.limit_val_batches > 0):
        raise ConfigError(
            f"trainer.val_check_interval={interval}: an epoch has only {batches_per_epoch} training "
            f"batches ({train_rows} training rows); use at most {batches_per_epoch}, a fraction of an "
            "epoch (1.0: once per epoch), or trainer.check_val_every_n_epoch=null to count batches "
            "across epochs"
        )


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fine-tune ``cfg.model`` on ``cfg.data`` with ``cfg.loss``; returns the final metrics.

    The order is cheapest first: loss, teacher, optimizer, schedule, trainer, tokenizer, data (read
    and encoded in full), and only then the model, so a bad config or a bad row fails in seconds,
    not after loading a 7B checkpoint. Each part checks its own settings when it is built.
    """
    loss, teacher = build_objective(cfg)
    lora = LoraSettings.from_config(OmegaConf.select(cfg, "model.lora"))
    optimizer = build_optimizer(cfg)
    scheduler = build_scheduler(cfg)
    resolved, trainer, tokenizer, datamodule = start_run(cfg, "data")
    if len(datamodule.val_set) == 0:
        trainer.limit_val_batches = 0
    steps = optimizer_steps(trainer, datamodule.steps_per_epoch())
    if scheduler is not None:
        scheduler = partial(scheduler, total_steps=steps)
    check_val_interval(trainer, datamodule.steps_per_epoch() * trainer.accumulate_grad_batches,
                       len(datamodule.train_set))

    model = build_model(cfg, tokenizer, lora)
    module = SFTModule(model, loss, optimizer, scheduler, teacher, **cfg.get("module", {}))
    return fit(trainer, module, datamodule, cfg, resolved, steps)


def start_run(cfg: DictConfig, data_key: str) -> tuple[dict[str, Any], L.Trainer, Any, L.LightningDataModule]:
    """What every run does between its cheap parts and its model: write the run config, seed,
    build the trainer, the tokenizer and the data (``cfg[data_key]``), every row read and checked
    now, so that a bad row fails before the model loads. Returns the resolved config with them."""
    if not isinstance(cfg.seed, int) or isinstance(cfg.seed, bool):
        shown = "null" if cfg.seed is None else cfg.seed
        raise ConfigError(f"seed={shown}: must be an integer (it seeds the data order, the LoRA adapters' start "
                          "and the sampling)")
    resolved = save_run_config(cfg, Path(cfg.paths.output_dir))
    L.seed_everything(cfg.seed, workers=True)
    trainer = build_trainer(cfg)
    tokenizer = build(cfg.model.tokenizer, "model.tokenizer")
    datamodule = build(cfg[data_key], data_key, tokenizer=tokenizer)
    datamodule.trainer = trainer  # its step layout: the trainer's accumulation and devices
    datamodule.setup("fit")
    return resolved, trainer, tokenizer, datamodule


def build_trainer(cfg: DictConfig) -> L.Trainer:
    """The Lightning ``Trainer`` of ``cfg.trainer`` with the run's callbacks and loggers, checkpoints
    written atomically, and (on the CPU) freed memory kept in the process."""
    check_devices(cfg.trainer)
    callbacks = [build(c, f"callbacks.{k}") for k, c in (cfg.get("callbacks") or {}).items() if c]
    loggers = [build(c, f"logger.{k}") for k, c in (cfg.get("logger") or {}).items() if c]
    # Sharded strategies write checkpoint folders through torch.distributed.checkpoint themselves.
    plugins = [] if _is_sharded(cfg.trainer.get("strategy")) else [AtomicCheckpointIO()]
    trainer: L.Trainer = build(cfg.trainer, "trainer", callbacks=callbacks, logger=loggers or False,
                               plugins=plugins or None)
    if cfg.get("cpu_keep_freed_memory") and isinstance(trainer.accelerator, CPUAccelerator):
        keep_freed_memory()
    return trainer


def build_model(cfg: DictConfig, tokenizer: Any, lora: LoraSettings, **kwargs: Any) -> Any:
    """``cfg.model.net``, checked against its tokenizer (the last and dearest part of a run), with
    ``lora``'s adapters (``model.lora``) when enabled: injected here, before any sharding
    (``configure_model``), so that every rank shards the one adapter.

    A model config read from a checkpoint offers ``init_device`` (``conf/model/``); left null, it
    is ``meta`` under a sharded strategy (``trainer=fsdp``): each rank then loads its own shards
    once sharded (``curio.models.sharded_loading``) instead of the whole model; LoRA adapters
    included (their starting values depend on the run's seed and their names alone).
    """
    net = cfg.model.net
    if "init_device" in net and net.init_device is None and _is_sharded(cfg.trainer.get("strategy")):
        kwargs["init_device"] = "meta"
    model = build(net, "model.net", **kwargs)
    vocab = model.get_output_embeddings().weight.shape[0]
    if len(tokenizer) > vocab:
        raise ConfigError(f"the tokenizer has {len(tokenizer)} tokens but the model's output layer only {vocab}")
    if lora.enabled:
        apply_lora(model, lora, seed=cfg.seed)
    return model


def fit(trainer: L.Trainer, module: L.LightningModule, datamodule: L.LightningDataModule, cfg: DictConfig,
        resolved: dict[str, Any], steps: int) -> dict[str, float]:
    """Log the resolved config, fit ``steps`` optimizer steps (resuming per ``ckpt_path``; the
    export checks them), and return the final metrics."""
    output_dir = Path(cfg.paths.output_dir)
    module.planned_steps = steps
    for logger in trainer.loggers:
        logger.log_hyperparams(resolved)
    trainer.fit(module, datamodule=datamodule, ckpt_path=resolve_ckpt_path(cfg.get("ckpt_path"), output_dir))
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    log.info("Run dir: %s", output_dir)
    return metrics
