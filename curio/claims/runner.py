"""Run every job of a study: train.py, then eval.py, then the probe; skip what is already done.

Each step runs the committed command line in a subprocess (exactly what a user would type), with
its output in a log file next to its results, so a failed job can be read and rerun alone. A study
interrupted at any point continues where it stopped: a finished export, a finished ``results.json``
or a probe file is never redone, a half-trained run resumes from its last checkpoint
(``ckpt_path=auto``) and a half-evaluated one keeps the benchmarks it finished (``resume=true``).
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from curio.claims.plan import BASE, Job, Preset, jobs
from curio.config import ROOT
from curio.evaluation.results import write_json_atomic

log = logging.getLogger(__name__)


class StepFailed(RuntimeError):
    """A train.py / eval.py subprocess exited non-zero; the message names its log file."""


def _run(command: list[str], log_file: Path) -> None:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("a", encoding="utf-8") as out:
        out.write(f"$ {' '.join(command)}\n")
        out.flush()
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "WANDB_MODE": "disabled"}
        code = subprocess.call(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env)
    if code != 0:
        tail = log_file.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-5:]
        raise StepFailed(f"exit {code}: {' '.join(command[1:3])} ... (log: {log_file})\n" + "\n".join(tail))


def trained(job: Job) -> bool:
    return (job.model_dir / "config.json").is_file() and (job.model_dir / "model.safetensors").is_file()


def evaluated(job: Job) -> bool:
    path = job.eval_dir / "results.json"
    if not path.is_file():
        return False
    results = json.loads(path.read_text(encoding="utf-8"))
    return results.get("finished") is not None and set(job.world.benchmarks) <= set(results.get("benchmarks", {}))


def train(job: Job, preset: Preset) -> None:
    if job.stage == "rl":
        return reinforce(job, preset)
    command = [
        sys.executable, "train.py", f"experiment=claims/{job.experiment}", f"seed={job.seed}",
        f"hydra.run.dir={job.train_dir}", "ckpt_path=auto", "~callbacks.progress_bar",
        *job.world.train_overrides, *preset.train_overrides,
    ]
    _run(command, job.train_dir.parent / f"seed{job.seed}.train.log")


def reinforce(job: Job, preset: Preset) -> None:
    """The RL stage from the job's SFT model: ``rl.py`` with the world's prompts and tuned settings."""
    command = [
        sys.executable, "rl.py", f"model={job.sft.model_dir}", f"prompts={job.world.prompts}", f"seed={job.seed}",
        f"hydra.run.dir={job.train_dir}", "ckpt_path=auto", "~callbacks.progress_bar", *preset.rl_overrides,
    ]
    _run(command, job.train_dir.parent / f"seed{job.seed}.rl.log")


def evaluate(job: Job, preset: Preset) -> None:
    command = [
        sys.executable, "eval.py", f"model={job.model_dir}", f"benchmarks=[{','.join(job.world.benchmarks)}]",
        f"limit={preset.limit}", f"sampling.n={preset.samples}", f"sampling.max_new_tokens={preset.max_new_tokens}",
        f"seed={job.seed}",
        f"generation.batch_size={preset.eval_batch_size}", "generation.progress=false",
        f"model.name={job.key}", f"hydra.run.dir={job.eval_dir}", "resume=true",
    ]
    _run(command, job.eval_dir.parent / f"seed{job.seed}.eval.log")


def run_probe(job: Job, preset: Preset) -> None:
    from curio.claims.probes import probe_model
    from curio.tinyworld.corpus import read_jsonl

    rows = list(read_jsonl(job.world.sft_val))[: preset.probe_rows]
    result = probe_model(job.model_dir, rows)
    job.probe_file.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(job.probe_file, result)  # a probe file is either whole or absent


#: A study folder's file of step wall times.
TIMINGS = "timings.json"


def read_timings(root: Path) -> dict[str, dict[str, float]]:
    """``<root>/timings.json``: each job's step wall times in seconds ({} before the first)."""
    path = root / TIMINGS
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _record(root: Path, job: Job, step: str, seconds: float) -> None:
    """Add a step's wall time to ``<root>/timings.json`` (the report sums it, resumes included)."""
    timings = read_timings(root)
    timings.setdefault(job.name, {})[step] = round(seconds, 1)
    write_json_atomic(root / TIMINGS, timings)


def run_study(preset: Preset, root: Path) -> list[Job]:
    """Run (or finish) every job of ``preset`` under ``root``; returns the jobs."""
    todo = jobs(preset, root)
    started = time.perf_counter()
    for index, job in enumerate(todo, 1):
        steps = []
        if job.experiment != BASE and not trained(job):
            steps.append(("train", train))
        if not evaluated(job):
            steps.append(("eval", evaluate))
        if not job.probe_file.is_file():
            steps.append(("probe", run_probe))
        for step, run in steps:
            t0 = time.perf_counter()
            run(job, preset)
            _record(root, job, step, time.perf_counter() - t0)
        done = ", ".join(step for step, _ in steps) or "already done"
        left = _time_left(root, todo, todo[index:])
        print(f"[{index}/{len(todo)}] {job.name}: {done} (study {(time.perf_counter() - started) / 60:.1f} min"
              + (f"; about {left / 3600:.1f} h left at the median pace so far)" if left else ")"), flush=True)
    return todo


def _time_left(root: Path, study: list[Job], remaining: list[Job]) -> float | None:
    """Seconds the ``remaining`` jobs of the ``study`` should take: per stage (SFT or RL), the median
    wall time of its finished jobs in ``<root>/timings.json`` (robust to a job slowed by other work
    on the machine); None while a remaining stage has no finished job yet."""
    timings = read_timings(root)
    per_stage: dict[str, list[float]] = {}
    for job in study:
        steps = timings.get(job.name, {})
        if "train" in steps and "eval" in steps:  # the base model is evaluated, never trained
            per_stage.setdefault(job.stage, []).append(sum(steps.values()))
    left = 0.0
    for job in remaining:
        seconds = per_stage.get(job.stage)
        if not seconds:
            return None
        left += statistics.median(seconds)
    return left
