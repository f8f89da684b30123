"""Run every job of a study: train.py, then eval.py, then the probe; skip what is already done.

Each step runs the committed command line in a subprocess (exactly what a user would type), with
its output in a log file next to its results, so a failed job can be read and rerun alone. A study
interrupted at any point continues where it stopped: a finished export, a finished ``results.json``
or a probe file is never redone, a half-trained run resumes from its last checkpoint
(``ckpt_path=auto``) and a half-evaluated one keeps the benchmarks it finished (``resume=true``).

Jobs are chained per experiment and seed (an RL job starts from its SFT model). With more than one
worker, that many chains run at once and the command line gives each step ``cores // workers``
threads: the tiny models' steps are bound by Python overhead, so two one-thread jobs on two cores
do more work than one two-thread job. The command line holds a lock file, so that a second
invocation cannot run the same study folder.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from itertools import groupby
from pathlib import Path

from curio.claims.plan import BASE, Job, Preset, jobs
from curio.config import ROOT
from curio.evaluation.results import write_json_atomic

log = logging.getLogger(__name__)


class StepFailed(RuntimeError):
    """A train.py / eval.py subprocess exited non-zero; the message names its log file."""


class StudyBusy(RuntimeError):
    """Another invocation holds the study folder's lock."""


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
_timings_lock = threading.Lock()


def read_timings(root: Path) -> dict[str, dict[str, float]]:
    """``<root>/timings.json``: each job's step wall times in seconds ({} before the first)."""
    path = root / TIMINGS
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _record(root: Path, job: Job, step: str, seconds: float) -> None:
    """Add a step's wall time to ``<root>/timings.json`` (the report sums it, resumes included)."""
    with _timings_lock:  # side-by-side jobs must not lose each other's entries
        timings = read_timings(root)
        timings.setdefault(job.name, {})[step] = round(seconds, 1)
        write_json_atomic(root / TIMINGS, timings)


def chains(todo: list[Job]) -> list[list[Job]]:
    """The jobs grouped by experiment and seed, in order: each chain runs in sequence (an RL job
    needs its SFT model), different chains are independent."""
    return [list(chain) for _, chain in groupby(todo, key=lambda job: (job.experiment, job.seed))]


@contextmanager
def study_lock(root: Path) -> Iterator[None]:
    """Hold ``<root>/.lock`` (the kernel drops it when the process ends, even when killed), or
    raise :class:`StudyBusy` if another process holds it."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StudyBusy(f"another `python -m curio.claims` is running the study in {root}; "
                            "wait for it or stop it first") from None
        yield


def run_study(preset: Preset, root: Path, workers: int = 1) -> list[Job]:
    """Run (or finish) every job of ``preset`` under ``root``, ``workers`` chains at a time;
    returns the jobs. A failed step stops new chains from starting; the running ones finish, then
    the first failure is raised."""
    todo = jobs(preset, root)
    pending = chains(todo)
    finished: list[Job] = []
    failures: list[Exception] = []
    state = threading.Lock()
    started = time.perf_counter()

    def work() -> None:
        while True:
            with state:
                if failures or not pending:
                    return
                chain = pending.pop(0)
            for job in chain:
                try:
                    done = _run_job(job, preset, root)
                except Exception as err:
                    with state:
                        failures.append(err)
                    return
                with state:
                    finished.append(job)
                    left = _time_left(root, todo, [other for other in todo if other not in finished])
                    print(f"[{len(finished)}/{len(todo)}] {job.name}: {done} "
                          f"(study {(time.perf_counter() - started) / 60:.1f} min"
                          + (f"; about {left / workers / 3600:.1f} h left at the median pace so far)"
                             if left else ")"), flush=True)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in range(workers):
            pool.submit(work)
    if failures:
        raise failures[0]
    return todo


def _run_job(job: Job, preset: Preset, root: Path) -> str:
    """Train, evaluate and probe one model, skipping what is done; returns the steps it ran."""
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
    return ", ".join(step for step, _ in steps) or "already done"


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
