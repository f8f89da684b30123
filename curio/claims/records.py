"""A study's records: one small JSON file per finished model, holding every number its report reads.

A study's folder (checkpoints, samples, logs) is large and is not committed, so a new machine starts
without it. Its records are committed next to the report (``docs/results_fork/records/`` for the
fork study: ``<key>/seed<S>.json``), and they are what the study trusts: a recorded model is never
run again, the report is written from the records alone, and a study of many hours continues on any
machine from a checkout. An RL job whose SFT model is recorded but not on this machine retrains it
first (seconds) with the same command; the records keep both models' weight digests, so the report
can say whether the retrained model is the one that was evaluated.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path
from typing import Any

from curio.claims.measures import RL_METRICS, collect, rl_curve, tau_histograms
from curio.claims.plan import BASE, Job, Preset
from curio.atomic_write import write_json_atomic
from curio.machine import cpu_model

#: The layout of a record; a record of another version is refused, not misread.
VERSION = 1
#: The file in a study folder that lists the code (commit) of every invocation that ran steps in it.
COMMITS = "commits.json"


class BadRecord(ValueError):
    """A record file that cannot be used; the message names the file and what is wrong."""


def records_dir(report: Path) -> Path:
    """Where a study's records live: beside its plots, ``<report stem>/records/``."""
    return report.parent / report.stem / "records"


def record_file(records: Path, job: Job) -> Path:
    return records / job.key / f"seed{job.seed}.json"


def read_commits(root: Path) -> list[str]:
    path = root / COMMITS
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []


def weights_digest(model_dir: Path) -> str:
    """sha256 of a model's ``model.safetensors``: equal digests, the same weights."""
    digest = hashlib.sha256()
    with (model_dir / "model.safetensors").open("rb") as weights:
        for block in iter(lambda: weights.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _machine() -> str:
    import torch

    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores ({cpu_model()}), "
            f"Python {platform.python_version()}, torch {torch.__version__}")


def _settings(preset: Preset) -> dict[str, Any]:
    """What must match for a record to stand for a job of ``preset``."""
    return {"preset": preset.name, "samples": preset.samples, "limit": preset.limit, "probe_rows": preset.probe_rows}


def make_record(job: Job, preset: Preset, steps: dict[str, float], commits: list[str]) -> dict[str, Any]:
    """Everything the report reads about ``job``, from its eval run, probe file and training log;
    ``steps`` are its steps' wall times (s), ``commits`` the code that ran them."""
    record: dict[str, Any] = {
        "version": VERSION, "model": job.name, **_settings(preset), "commits": commits, "machine": _machine(),
        "steps": steps, "measures": collect(job), "tau_histograms": tau_histograms(job),
    }
    if job.experiment != BASE:
        record["weights_sha256"] = weights_digest(job.model_dir)
    if job.stage == "rl":
        record["sft_weights_sha256"] = weights_digest(job.sft.model_dir)  # the model this run started from
        metrics_csv = job.train_dir / "csv" / "metrics.csv"
        record["rl_curves"] = {metric: rl_curve(metrics_csv, metric) for metric in RL_METRICS}
    return record


def write_record(records: Path, job: Job, record: dict[str, Any]) -> None:
    path = record_file(records, job)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, record)  # a record is either whole or absent


def read_record(records: Path, job: Job, preset: Preset) -> dict[str, Any] | None:
    """``job``'s record, or None if it has none; :class:`BadRecord` if the file is not a record of
    this job under this preset's settings."""
    path = record_file(records, job)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise BadRecord(f"{path}: not valid JSON ({err})") from None
    if not isinstance(record, dict) or record.get("version") != VERSION:
        raise BadRecord(f"{path}: not a version {VERSION} study record "
                        f"(version: {record.get('version') if isinstance(record, dict) else None!r})")
    if record.get("model") != job.name:
        raise BadRecord(f"{path}: is the record of {record.get('model')!r}, not of {job.name!r}")
    for key, value in _settings(preset).items():
        if record.get(key) != value:
            raise BadRecord(f"{path}: made with {key}={record.get(key)!r}, this study has {key}={value!r}; "
                            "move the records away to start over")
    missing = [key for key in ("steps", "measures", "tau_histograms", "commits", "machine") if key not in record]
    if job.stage == "rl":
        missing += [key for key in ("rl_curves", "sft_weights_sha256") if key not in record]
    if missing:
        raise BadRecord(f"{path}: missing {', '.join(missing)}")
    return record
