"""Periodic checkpoints that Lightning resumes exactly, wherever they fall."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint


def on_last_batch(trainer: L.Trainer) -> bool:
    """Whether the batch that just ended is its epoch's last."""
    return bool(trainer.fit_loop.epoch_loop.batch_progress.is_last_batch)


class PeriodicCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` whose every-N-steps checkpoint is written at the epoch's end (after its
    validation) when step N is the epoch's last batch, instead of at that batch's end.

    Lightning 2.6 resumes a checkpoint written at the end of an epoch's last batch wrongly: it
    counts the next epoch as done, and the run ends short while reporting success (measured: a
    2-epoch run killed after such a checkpoint ended at 12 of its 20 steps; a 3-epoch run of the
    fork study at 62 of 93). Written at the epoch's end, it resumes exactly (``tests/test_resume.py``).
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._at_epoch_end = False

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if on_last_batch(trainer):
            self._at_epoch_end = True
            return
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._at_epoch_end:  # the last batch's check, now that the epoch is whole
            self._at_epoch_end = False
            super().on_train_batch_end(trainer, pl_module, None, None, -1)
