"""A callback that kills its own process with SIGKILL: the crash in the exact-resume tests."""

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
