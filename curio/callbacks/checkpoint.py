"""Periodic checkpoints that Lightning resumes exactly, wherever they fall."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

from curio.errors import ConfigError


def on_last_batch(trainer: L.Trainer) -> bool:
    """Whether the batch that just ended is its epoch's last."""
    return bool(trainer.fit_loop.epoch_loop.batch_progress.is_last_batch)


def check_resumable(checkpoint: dict[str, Any]) -> None:
    """Refuse a checkpoint written at the end of an epoch's last batch (by Lightning's own
    ``ModelCheckpoint``, or by curio before :class:`PeriodicCheckpoint`): resumed, the run would
    skip the next epoch and end early while reporting success. A checkpoint written at the epoch's
    end has that batch counted as completed; one written at the batch's end does not yet."""
    progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_loop.batch_progress")
    if progress and progress.get("is_last_batch") and \
            progress["total"]["completed"] == progress["total"]["processed"] - 1:
        raise ConfigError(f"ckpt_path: this checkpoint (step {checkpoint.get('global_step')}) was written at the "
                          "end of an epoch's last batch, which Lightning resumes as if the next epoch were done "
                          "(the run would end early); resume from an earlier checkpoint, or start afresh")


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
