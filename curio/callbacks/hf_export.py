"""Export the trained model in Hugging Face format at the end of training."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback

from curio.export import export_hf

log = logging.getLogger(__name__)


class HFExport(Callback):
    """Writes ``<trainer.default_root_dir>/<dirname>/`` on rank 0 when ``fit`` ends.

    The tokenizer comes from the datamodule, so the export carries the exact chat template the
    model was trained with.
    """

    def __init__(self, dirname: str = "hf", dtype: str | None = None):
        self.dirname = dirname
        self.dtype = dtype
        self.path: Path | None = None

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        tokenizer = trainer.datamodule.tokenizer
        self.path = export_hf(pl_module.model, tokenizer, Path(trainer.default_root_dir) / self.dirname, self.dtype)
        log.info("Exported the Hugging Face checkpoint to %s", self.path)
