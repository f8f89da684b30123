"""Save a checkpoint and stop when the job is pre-empted (SIGTERM, or SIGUSR1 as SLURM sends)."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from curio.callbacks.checkpoint import on_last_batch

log = logging.getLogger(__name__)

#: Exit status of a pre-empted run (128 + SIGTERM), so schedulers see it did not finish.
PREEMPTED_EXIT_CODE = 143


class Preempted(SystemExit):
    """Raised after the pre-emption checkpoint is written; ends the run without the HF export."""


class PreemptionCheckpoint(Callback):
    """On a pre-emption signal, finish the current optimizer step, write ``last.ckpt``, and exit.

    The signal only sets a flag; the checkpoint is written at the next optimizer-step boundary
    (never mid-accumulation), where the run can be resumed exactly with ``ckpt_path=auto`` and the
    same ``hydra.run.dir``. All ranks stop at the same step (the flag is all-reduced).

    A job started by submitit (``hydra/launcher=slurm`` or ``local``) gets SIGUSR2 before its time
    limit, and submitit's own handler for it requeues the job with the same command line. That
    handler still runs, once the checkpoint is written: the requeued job (``ckpt_path=auto``)
    resumes from this step instead of from the last periodic checkpoint.

    Args:
        signals: signal names to handle (default SIGTERM, SIGUSR1 and submitit's SIGUSR2).
        dirname: checkpoint folder, relative to the run dir.
    """

    def __init__(self, signals: tuple[str, ...] = ("SIGTERM", "SIGUSR1", "SIGUSR2"), dirname: str = "checkpoints"):
        self.signals = tuple(signals)
        self.dirname = dirname
        self.received: str | None = None
        self._at_epoch_end = False
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame) -> None:
        self.received = signal.Signals(signum).name

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread
        for name in self.signals:
            sig = getattr(signal, name)
            self._previous[sig] = signal.signal(sig, self._handle)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._restore()

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        if (batch_idx + 1) % trainer.accumulate_grad_batches != 0:
            return
        stop = self.received is not None
        if trainer.world_size > 1:
            flag = torch.tensor(float(stop), device=pl_module.device)
            stop = bool(trainer.strategy.reduce(flag, reduce_op="sum") > 0)
        if not stop:
            return
        if on_last_batch(trainer):  # written at the epoch's end: see curio.callbacks.checkpoint
            self._at_epoch_end = True
            return
        # The loop would hand this step's metrics to the loggers right after this hook; the exit
        # below would skip that, and the step would be missing from metrics.csv for good.
        self._save_and_exit(trainer, log_step=True)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._at_epoch_end:
            self._save_and_exit(trainer, log_step=False)  # the loop has logged the step by now

    def _save_and_exit(self, trainer: L.Trainer, log_step: bool) -> None:
        path = Path(trainer.default_root_dir) / self.dirname / "last.ckpt"
        trainer.save_checkpoint(path)
        if log_step:
            trainer._logger_connector.update_train_step_metrics()
        for logger in trainer.loggers:
            logger.save()
        log.warning("Pre-empted (%s) at step %d: saved %s; resume with ckpt_path=auto and the same "
                    "hydra.run.dir", self.received or "signal on another rank", trainer.global_step, path)
        self._requeue_with_submitit()
        raise Preempted(PREEMPTED_EXIT_CODE)

    def _requeue_with_submitit(self) -> None:
        """Run submitit's handler for the signal received, if it had one: it requeues the job and
        exits (on the job's first task; on the others it returns)."""
        if self.received is None:
            return
        sig = getattr(signal, self.received)
        handler = self._previous.get(sig)
        if callable(handler) and getattr(handler, "__module__", "").startswith("submitit."):
            self._restore()
            handler(sig, None)
