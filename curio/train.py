"""Build everything from the composed config and fit: the body of ``train.py``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_class, instantiate
from lightning.pytorch.accelerators import CPUAccelerator
from lightning.pytorch.strategies import ModelParallelStrategy
from omegaconf import DictConfig, OmegaConf

from curio.checkpoint_io import AtomicCheckpointIO
from curio.config import redact, validate_config
from curio.cpu_allocator import keep_freed_memory
from curio.data.sampling import check_step_fits
from curio.errors import ConfigError, UserError
from curio.module import SFTModule

log = logging.getLogger(__name__)
# Lightning attaches its own console handler; Hydra's root handlers already print (and file) its
# records, so drop Lightning's to avoid every line showing twice.
logging.getLogger("lightning.pytorch").handlers.clear()


def build(node: Any, key: str, **kwargs: Any) -> Any:
    """``instantiate`` whose constructor-argument errors come out as one ``ConfigError`` naming
    the config key (Hydra wraps them in its own exception with the whole stack)."""
    try:
        return instantiate(node, **kwargs)
    except Exception as err:
        cause: BaseException | None = err
        while cause is not None and not isinstance(cause, (UserError, ValueError, TypeError)):
            cause = cause.__cause__ or cause.__context__
        if isinstance(cause, UserError):
            raise cause from err
        if isinstance(cause, (ValueError, TypeError)):
            raise ConfigError(f"{key}: {cause}") from err
        raise


def resolve_ckpt_path(ckpt_path: str | None, output_dir: Path) -> str | None:
    """``auto``: this run dir's ``checkpoints/last.ckpt`` if there is one (else start fresh), so
    the same command both starts and resumes a pre-emptible job. Other values go to Lightning."""
    if ckpt_path != "auto":
        return ckpt_path
    last = output_dir / "checkpoints" / "last.ckpt"
    if last.exists():  # a file, or a folder for sharded (FSDP2) checkpoints
        log.info("Resuming from %s", last)
        return str(last)
    return None


def _is_sharded(strategy: Any) -> bool:
    target = strategy.get("_target_") if isinstance(strategy, DictConfig) else None
    return target is not None and issubclass(get_class(target), ModelParallelStrategy)


def save_run_config(cfg: DictConfig, output_dir: Path) -> dict[str, Any]:
    """Write the resolved config and the command-line overrides, secrets masked."""
    resolved = redact(OmegaConf.to_container(cfg, resolve=True))
    (output_dir / "config_resolved.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
    if HydraConfig.initialized():
        overrides = [o if "=" not in o else "=".join(redact(dict([o.split("=", 1)])).popitem())
                     for o in HydraConfig.get().overrides.task]
        (output_dir / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    return resolved


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fine-tune ``cfg.model`` on ``cfg.data`` with ``cfg.loss``; returns the final metrics.

    The order is cheapest first: values, loss, teacher, trainer, tokenizer, data (read and encoded
    in full), and only then the model, so a bad config or a bad row fails in seconds, not after
    loading a 7B checkpoint.
    """
    validate_config(cfg)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    resolved = save_run_config(cfg, output_dir)
    L.seed_everything(cfg.seed, workers=True)

    loss = build(cfg.loss, "loss")
    if loss.needs_teacher and not cfg.get("teacher"):
        raise ConfigError(f"loss={type(loss).__name__} needs a teacher: set teacher=lagged|ema|frozen|live")
    teacher = build(cfg.teacher, "teacher") if loss.needs_teacher else None
    optimizer = build(cfg.optim, "optim")
    scheduler = build(cfg.sched, "sched") if cfg.get("sched") else None
    callbacks = [build(c, f"callbacks.{k}") for k, c in (cfg.get("callbacks") or {}).items() if c]
    loggers = [build(c, f"logger.{k}") for k, c in (cfg.get("logger") or {}).items() if c]
    # Sharded strategies write checkpoint folders through torch.distributed.checkpoint themselves.
    plugins = [] if _is_sharded(cfg.trainer.get("strategy")) else [AtomicCheckpointIO()]
    trainer: L.Trainer = build(cfg.trainer, "trainer", callbacks=callbacks, logger=loggers or False,
                               plugins=plugins or None)
    if cfg.get("cpu_keep_freed_memory") and isinstance(trainer.accelerator, CPUAccelerator):
        keep_freed_memory()

    tokenizer = build(cfg.model.tokenizer, "model.tokenizer")
    datamodule = build(cfg.data, "data", tokenizer=tokenizer)
    datamodule.setup("fit")  # read and encode now: a bad row fails before the model loads
    check_step_fits(len(datamodule.train_set), datamodule.micro_batch_size, datamodule.accumulate, trainer.world_size)
    if len(datamodule.val_set) == 0:
        trainer.limit_val_batches = 0

    model = build(cfg.model.net, "model.net")
    vocab = model.get_output_embeddings().weight.shape[0]
    if len(tokenizer) > vocab:
        raise ConfigError(f"the tokenizer has {len(tokenizer)} tokens but the model's output layer only {vocab}")
    module = SFTModule(model, loss, optimizer, scheduler, teacher, **cfg.get("module", {}))

    for logger in trainer.loggers:
        logger.log_hyperparams(resolved)
    trainer.fit(module, datamodule=datamodule, ckpt_path=resolve_ckpt_path(cfg.get("ckpt_path"), output_dir))
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    log.info("Run dir: %s", output_dir)
    return metrics
