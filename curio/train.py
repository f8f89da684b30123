"""Build everything from the composed config and fit: the body of ``train.py``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from curio.errors import ConfigError
from curio.module import SFTModule

log = logging.getLogger(__name__)
# Lightning attaches its own console handler; Hydra's root handlers already print (and file) its
# records, so drop Lightning's to avoid every line showing twice.
logging.getLogger("lightning.pytorch").handlers.clear()


def resolve_ckpt_path(ckpt_path: str | None, output_dir: Path) -> str | None:
    """``auto``: this run dir's ``checkpoints/last.ckpt`` if there is one (else start fresh), so
    the same command both starts and resumes a pre-emptible job. Other values go to Lightning."""
    if ckpt_path != "auto":
        return ckpt_path
    last = output_dir / "checkpoints" / "last.ckpt"
    if last.is_file():
        log.info("Resuming from %s", last)
        return str(last)
    return None


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fine-tune ``cfg.model`` on ``cfg.data`` with ``cfg.loss``; returns the final metrics.

    Everything cheap (data paths, loss and teacher settings) is built before the model, so a bad
    config fails in seconds, not after loading a 7B checkpoint.
    """
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, output_dir / "config_resolved.yaml", resolve=True)
    L.seed_everything(cfg.seed, workers=True)

    loss = instantiate(cfg.loss)
    teacher = instantiate(cfg.teacher) if loss.needs_teacher else None
    tokenizer = instantiate(cfg.model.tokenizer)
    datamodule = instantiate(cfg.data, tokenizer=tokenizer)
    datamodule.setup("fit")  # read and encode now: a bad row fails before the model loads
    optimizer = instantiate(cfg.optim)
    scheduler = instantiate(cfg.sched) if cfg.get("sched") else None
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c]

    model = instantiate(cfg.model.net)
    vocab = model.get_output_embeddings().weight.shape[0]
    if len(tokenizer) > vocab:
        raise ConfigError(f"the tokenizer has {len(tokenizer)} tokens but the model's output layer only {vocab}")
    module = SFTModule(model, loss, optimizer, scheduler, teacher, **cfg.get("module", {}))

    no_val = {"limit_val_batches": 0} if len(datamodule.val_set) == 0 else {}
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, **no_val)
    for logger in trainer.loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    trainer.fit(module, datamodule=datamodule, ckpt_path=resolve_ckpt_path(cfg.get("ckpt_path"), output_dir))
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    log.info("Run dir: %s", output_dir)
    return metrics
