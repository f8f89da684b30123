"""Experiment loggers that need more than their constructor: a CSV log that survives a resume,
and W&B without an API key, resuming its run."""

from __future__ import annotations

import csv
import logging
import netrc
import os
import secrets
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger, WandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment

log = logging.getLogger(__name__)


class _ResumableWriter(ExperimentWriter):
    """Lightning's CSV writer deletes an existing ``metrics.csv`` when it starts. This one keeps
    it: when the first rows of a resumed run are saved, the old rows from that step on (logged
    after the checkpoint, and about to be logged again) are dropped, so the file holds the whole
    run with each step once. A resumed run that logs nothing leaves the file as it was."""

    def _check_log_dir_exists(self) -> None:
        self._resumed = self._fs.isfile(self.metrics_file_path)

    def save(self) -> None:
        if self._resumed and self.metrics:
            first = min(int(m["step"]) for m in self.metrics)
            with self._fs.open(self.metrics_file_path, "r", newline="") as file:
                reader = csv.DictReader(file)
                keys = list(reader.fieldnames or [])
                kept = [row for row in reader if row.get("step") and int(float(row["step"])) < first]
            self.metrics_keys = sorted(set(keys) | set(self.metrics_keys))
            with self._fs.open(self.metrics_file_path, "w", newline="") as file:
                writer = csv.DictWriter(file, fieldnames=self.metrics_keys)
                writer.writeheader()
                writer.writerows(kept)
            self._resumed = False
        super().save()


class ResumableCSVLogger(CSVLogger):
    """``CSVLogger`` whose ``metrics.csv`` holds the whole run across resumes (see
    :class:`_ResumableWriter`); arguments as ``CSVLogger``'s."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ResumableWriter(log_dir=self.log_dir)
        return self._experiment


def _has_wandb_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def wandb_run_id(save_dir: str | Path) -> str:
    """This run dir's W&B run id: read from ``<save_dir>/wandb_run_id`` (a resumed run logs to the
    same W&B run), or made and written there the first time."""
    path = Path(save_dir) / "wandb_run_id"
    if path.is_file():
        return path.read_text().strip()
    run_id = secrets.token_hex(4)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(run_id + "\n")
    return run_id


def wandb_logger(mode: str | None = None, tags: list[str] | None = None, save_dir: str = ".",
                 **kwargs: Any) -> WandbLogger:
    """A ``WandbLogger`` that falls back to offline mode, and says so, when no API key is set, and
    that resumes this run dir's W&B run (``resume="allow"``) when the run is resumed."""
    mode = mode or os.environ.get("WANDB_MODE")
    if mode is None:
        mode = "online" if _has_wandb_key() else "offline"
        if mode == "offline":
            log.warning("W&B: no API key (WANDB_API_KEY or ~/.netrc); logging offline. Upload later with `wandb sync`.")
    return WandbLogger(mode=mode, tags=[str(t) for t in tags or []], log_model=False, save_dir=save_dir,
                       id=wandb_run_id(save_dir), resume="allow", **kwargs)
