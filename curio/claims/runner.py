"""Run every job of a study: train.py, then eval.py, then the probe, then its record; skip what is
recorded.

Each step runs the committed command line in a subprocess (exactly what a user would type), with
its output in a log file next to its results, so a failed job can be read and rerun alone. A job is
done when its record is written (:mod:`curio.claims.records`: committed, so it outlives the
machine); until then, a study interrupted at any point continues where it stopped on the same
machine: a finished export, a finished ``results.json`` or a probe file is never redone, a
half-trained run resumes from its last checkpoint (``ckpt_path=auto``) and a half-evaluated one
keeps the benchmarks and sampling batches it finished (``resume=true``).

Jobs are chained per experiment and seed (an RL job starts from its SFT model). With more than one
worker, that many chains run at once and the command line gives each step ``cores // workers``
threads: the tiny models' steps are bound by Python overhead, so two one-thread jobs on two cores
do more work than one two-thread job. The command line holds a lock file, so that a second
invocation cannot run the same study folder.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import groupby
from pathlib import Path

from curio.atomic_write import write_json_atomic
from curio.claims.plan import BASE, Job, Preset, jobs
from curio.claims.records import (make_record, read_commits, read_record, record_file, weights_digest,
                                   write_record)
from curio.config import ROOT

log = logging.getLogger(__name__)


class StepFailed(RuntimeError):
    """A train.py / eval.py subprocess exited non-zero; the message names its log file."""


class StudyBusy(RuntimeError):
    """Another invocation holds the study folder's lock."""


#: The step subprocesses running now, so that an interrupted study can stop them.
_running: set[subprocess.Popen] = set()
_running_lock = threading.Lock()


def _dies_with_the_study() -> Callable[[], None] | None:
    """On Linux, what makes a step receive SIGTERM when the study's process dies, even by SIGKILL
    (``prctl(PR_SET_PDEATHSIG)``, run in the child before it executes the step). Elsewhere None:
    only Ctrl-C and SIGTERM of the study stop its steps."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the child only calls it
    study = os.getpid()

    def in_child() -> None:
        if prctl(1, signal.SIGTERM) != 0:  # 1 = PR_SET_PDEATHSIG
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")  # Popen raises it
        if os.getppid() != study:  # the study died before the line above
            os.kill(os.getpid(), signal.SIGTERM)

    return in_child


#: The study lock's file descriptors (:func:`study_lock`), inherited by every step.
_lock_fds: list[int] = []


def _run(command: list[str], log_file: Path) -> None:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("a", encoding="utf-8") as out:
        out.write(f"$ {' '.join(command)}\n")
        out.flush()
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "WANDB_MODE": "disabled"}
        process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env,
                                   preexec_fn=_dies_with_the_study(), pass_fds=tuple(_lock_fds))
        with _running_lock:
            _running.add(process)
        try:
            code = process.wait()
        except BaseException:  # interrupted in this thread: the step must not outlive the study
            _stop(process)
            raise
        finally:
            with _running_lock:
                _running.discard(process)
    if code != 0:
        tail = log_file.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-5:]
        raise StepFailed(f"exit {code}: {' '.join(command[1:3])} ... (log: {log_file})\n" + "\n".join(tail))


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 30 s (a step killed at any point resumes: ``ckpt_path=auto``,
    ``resume=true``)."""
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def trained(job: Job) -> bool:
    return (job.model_dir / "config.json").is_file() and (job.model_dir / "model.safetensors").is_file()


def evaluated(job: Job) -> bool:
    path = job.eval_dir / "results.json"
    if not path.is_file():
        return False
    results = json.loads(path.read_text(encoding="utf-8"))
    return results.get("finished") is not None and set(job.world.benchmarks) <= set(results.get("benchmarks", {}))


def train_command(job: Job, preset: Preset) -> list[str]:
    """``train.py`` for an SFT job; ``rl.py`` for an RL job (from its SFT model, with the world's
    prompts and tuned settings)."""
    if job.stage == "rl":
        return [
            sys.executable, "rl.py", f"model={job.sft.model_dir}", f"prompts={job.world.prompts}", f"seed={job.seed}",
            f"hydra.run.dir={job.train_dir}", "ckpt_path=auto", "~callbacks.progress_bar", *preset.rl_overrides,
        ]
    return [
        sys.executable, "train.py", f"experiment=claims/{job.experiment}", f"seed={job.seed}",
        f"hydra.run.dir={job.train_dir}", "ckpt_path=auto", "~callbacks.progress_bar",
        *job.world.train_overrides, *preset.train_overrides,
    ]


def train(job: Job, preset: Preset) -> None:
    log = f"seed{job.seed}.{'rl' if job.stage == 'rl' else 'train'}.log"
    _run(train_command(job, preset), job.train_dir.parent / log)


def eval_command(job: Job, preset: Preset) -> list[str]:
    return [
        sys.executable, "eval.py", f"model={job.model_dir}", f"benchmarks=[{','.join(job.world.benchmarks)}]",
        f"limit={preset.limit}", f"sampling.n={preset.samples}", f"sampling.max_new_tokens={preset.max_new_tokens}",
        f"seed={job.seed}",
        f"generation.batch_size={preset.eval_batch_size}", "generation.progress=false",
        f"model.name={job.key}", f"hydra.run.dir={job.eval_dir}", "resume=true",
    ]


def evaluate(job: Job, preset: Preset) -> None:
    _run(eval_command(job, preset), job.eval_dir.parent / f"seed{job.seed}.eval.log")


def run_probe(job: Job, preset: Preset) -> None:
    from curio.claims.probes import probe_model
    from curio.tinyworld.corpus import read_jsonl

    rows = list(read_jsonl(job.world.sft_val))[: preset.probe_rows]
    result = probe_model(job.model_dir, rows)
    job.probe_file.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(job.probe_file, result)  # a probe file is either whole or absent


#: A study folder's file of step wall times.
TIMINGS = "timings.json"
#: The step of an RL job whose SFT model was recorded on another machine: it is trained again here.
RETRAIN_SFT = "retrain sft"
_timings_lock = threading.Lock()


def read_timings(root: Path) -> dict[str, dict[str, float]]:
    """``<root>/timings.json``: each job's step wall times in seconds ({} before the first)."""
    path = root / TIMINGS
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _record(root: Path, job: Job, step: str, seconds: float) -> None:
    """Set a finished step's wall time in ``<root>/timings.json`` (a job's record keeps its entry)."""
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
    """Hold ``<root>/.lock``, or raise :class:`StudyBusy` if another process holds it.

    The lock belongs to the open file, which every step inherits: it is free only once the study
    and all its steps have ended, however they end. A study stopped by Ctrl-C or SIGTERM stops its
    steps; one that dies otherwise has its steps sent SIGTERM by the kernel (Linux), and a step
    still saving its checkpoint keeps the study busy until it exits, so a restarted study never
    runs a step beside its orphaned earlier self."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StudyBusy(f"another `python -m curio.claims`, or a step of one that was killed, is running "
                            f"the study in {root}; wait for it or stop it first") from None
        _lock_fds.append(handle.fileno())
        try:
            yield
        finally:
            _lock_fds.remove(handle.fileno())


def study_timings(root: Path, records: Path, study: list[Job]) -> dict[str, dict[str, float]]:
    """Each job's step wall times (s): from its record where it has one (perhaps another machine's),
    else from this folder's ``timings.json``. Once this folder has finished a job of a stage (SFT or
    RL: trained and evaluated here), that stage's times are this folder's only: a study that moved
    to another machine runs its remaining jobs at that machine's pace (the fork study evaluated a
    model 2-3x faster on its second machine than on its first)."""
    local = read_timings(root)
    here = {job.stage for job in study if {"train", "eval"} <= local.get(job.name, {}).keys()}
    timings = {}
    for job in study:
        path = record_file(records, job)
        if path.is_file() and job.stage not in here:
            timings[job.name] = json.loads(path.read_text(encoding="utf-8"))["steps"]
        elif job.name in local:
            timings[job.name] = local[job.name]
    return timings


def run_study(preset: Preset, root: Path, records: Path, workers: int = 1) -> list[Job]:
    """Run (or finish) every job of ``preset`` under ``root`` that has no record in ``records``,
    ``workers`` chains at a time; returns the jobs. Every existing record is checked first
    (:class:`~curio.claims.records.BadRecord` before any work). A failed step is reported at once
    and stops the study: no job starts after it, the jobs running on other workers finish, then the
    first failure is raised. An interrupt (Ctrl-C, or SIGTERM through the command line) stops the
    running steps at once."""
    todo = jobs(preset, root)
    for job in todo:
        read_record(records, job, preset)
    pending = chains(todo)
    finished: list[Job] = []
    failures: list[BaseException] = []
    stop = threading.Event()
    state_lock = threading.Lock()
    started = time.perf_counter()

    def work() -> None:
        try:
            while not stop.is_set():
                with state_lock:
                    if not pending:
                        return
                    chain = pending.pop(0)
                for job in chain:
                    if stop.is_set():
                        return
                    try:
                        done = _run_job(job, preset, root, records)
                    except Exception as err:
                        if not stop.is_set():  # (after an interrupt, the stopped steps' exits are no news)
                            print(f"{job.name}: failed; no job starts after it ({str(err).splitlines()[0]})",
                                  file=sys.stderr, flush=True)
                        raise
                    with state_lock:
                        finished.append(job)
                        _report_progress(study_timings(root, records, todo), todo, finished, job, done, workers,
                                         started)
        except BaseException as err:  # a step, the progress line, an interrupt: every one stops the study
            failures.append(err)
            stop.set()

    if workers == 1:
        work()
    else:
        threads = [threading.Thread(target=work, name=f"study-worker-{i}") for i in range(workers)]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                thread.join()
        except BaseException:  # only this thread sees Ctrl-C / SIGTERM: stop the workers' steps
            stop.set()
            with _running_lock:
                running = list(_running)
            for process in running:
                _stop(process)
            for thread in threads:
                thread.join()
            raise
    if failures:
        raise failures[0]
    return todo


def _report_progress(timings: dict[str, dict[str, float]], todo: list[Job], finished: list[Job], job: Job, done: str,
                     workers: int, started: float) -> None:
    left = _time_left(timings, todo, [other for other in todo if other not in finished], workers)
    print(f"[{len(finished)}/{len(todo)}] {job.name}: {done} (study {(time.perf_counter() - started) / 60:.1f} min"
          + (f"; about {left / 3600:.1f} h left at the median pace so far)" if left else ")"), flush=True)


def _run_job(job: Job, preset: Preset, root: Path, records: Path) -> str:
    """Train, evaluate and probe one model, skipping what is done, then write its record; returns
    the steps it ran ("recorded" for a job recorded before)."""
    if record_file(records, job).is_file():  # checked by run_study before the first job
        return "recorded"
    steps = []
    if job.stage == "rl" and not trained(job) and not trained(job.sft):
        # Its SFT model is recorded (the chain's first job), but was trained on another machine.
        steps.append((RETRAIN_SFT, lambda job, preset: _retrain_sft(job, preset, records)))
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
    write_record(records, job, make_record(job, preset, read_timings(root).get(job.name, {}), read_commits(root)))
    return ", ".join([*(step for step, _ in steps), "record"])


def _retrain_sft(job: Job, preset: Preset, records: Path) -> None:
    """Train ``job``'s SFT model again with its command line, and say so if the weights differ from
    the recorded (evaluated) ones; the RL record keeps the digest of the model it started from."""
    train(job.sft, preset)
    recorded = read_record(records, job.sft, preset)
    if recorded is not None and recorded["weights_sha256"] != weights_digest(job.sft.model_dir):
        print(f"warning: {job.sft.name} trained again for {job.name} differs from its recorded weights "
              f"(the report lists it)", file=sys.stderr, flush=True)


def _time_left(timings: dict[str, dict[str, float]], study: list[Job], remaining: list[Job],
               workers: int = 1) -> float | None:
    """Seconds the ``remaining`` jobs of the ``study`` should take on ``workers`` workers: each job
    at the median wall time of the finished jobs of its stage (SFT or RL) in ``timings``
    (:func:`study_timings`; the median is robust to a job slowed by other work on the machine), the
    chains shared by the workers but none shorter than its own length; None while a remaining stage
    has no finished job yet."""
    per_stage: dict[str, list[float]] = {}
    for job in study:
        steps = timings.get(job.name, {})
        if "train" in steps and "eval" in steps:  # the base model is evaluated, never trained
            # An RL job's retraining of its SFT model happens once per move to a new machine, not per job.
            per_stage.setdefault(job.stage, []).append(sum(s for step, s in steps.items() if step != RETRAIN_SFT))
    if any(job.stage not in per_stage for job in remaining):
        return None
    lengths = [sum(statistics.median(per_stage[job.stage]) for job in chain) for chain in chains(remaining)]
    if not lengths:
        return 0.0
    return max(sum(lengths) / min(workers, len(lengths)), max(lengths))
