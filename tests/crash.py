"""Callbacks that break a run on purpose: the crashes in the exact-resume tests, and the
miscounted or stopped loops of the run-length check's."""

import os
import signal

import lightning as L


class SigkillAtStep(L.Callback):
    """Dies like a pre-empted job (no cleanup, no handler) before optimizer step ``step + 1``."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class SignalAtStep(L.Callback):
    """Sends ``signal_name`` to its own process before optimizer step ``step + 1`` (a pre-emption)."""

    def __init__(self, step: int, signal_name: str = "SIGTERM"):
        self.step = step
        self.signal = getattr(signal, signal_name)
        self.sent = False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step and not self.sent:
            self.sent = True
            os.kill(os.getpid(), self.signal)


class MiscountEpochs(L.Callback):
    """Makes Lightning's loop count an epoch more than ran, at the first epoch's end: the kind of
    defect (a wrongly restored loop) that ends a run short while reporting success."""

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch == 0:
            trainer.fit_loop.epoch_progress.current.processed += 1


class StopAtStep(L.Callback):
    """Asks the run to stop after optimizer step ``step``, as early stopping does."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            trainer.should_stop = True
