"""Experiment loggers that need more than their constructor: W&B without an API key."""

from __future__ import annotations

import logging
import netrc
import os
from typing import Any

from lightning.pytorch.loggers import WandbLogger

log = logging.getLogger(__name__)


def _has_wandb_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def wandb_logger(mode: str | None = None, tags: list[str] | None = None, **kwargs: Any) -> WandbLogger:
    """A ``WandbLogger`` that falls back to offline mode, and says so, when no API key is set."""
    mode = mode or os.environ.get("WANDB_MODE")
    if mode is None:
        mode = "online" if _has_wandb_key() else "offline"
        if mode == "offline":
            log.warning("W&B: no API key (WANDB_API_KEY or ~/.netrc); logging offline. Upload later with `wandb sync`.")
    return WandbLogger(mode=mode, tags=[str(t) for t in tags or []], log_model=False, **kwargs)
