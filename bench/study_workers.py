"""``python -m bench.study_workers [--jobs N] [--eval-problems P] [--train-steps S]``

Should a claims study run its jobs side by side (``python -m curio.claims --workers N``)? Times the
study's own steps on the fork world, N copies of each: one after another with N torch threads each,
then all N at once with one thread each (as ``--workers N`` runs them). A step is the command line
the study runs (``curio.claims.runner``), smaller: ``eval.py`` sampling the shipped base model (the
ID test set, 64 samples per problem), and ``train.py experiment=claims/curio`` on the fork world.
Start-up of each process is included, as in the study. Run it on an otherwise idle machine; the
results table is in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from curio.claims.plan import BASE, PRESETS, Job
from curio.claims.runner import eval_command, train_command

ROOT = Path(__file__).resolve().parents[1]
STUDY = PRESETS["fork_full"]


def _eval(out: Path, problems: int) -> list[str]:
    first = next(iter(STUDY.world.benchmarks))  # the ID test set
    world = replace(STUDY.world, benchmarks={first: STUDY.world.benchmarks[first]})
    return eval_command(Job(BASE, 0, out, world), replace(STUDY, limit=problems))


def _train(out: Path, steps: int) -> list[str]:
    overrides = (*STUDY.train_overrides, f"trainer.max_steps={steps}")
    return train_command(Job("curio", 0, out, STUDY.world), replace(STUDY, train_overrides=overrides))


def _wall(commands: list[list[str]], threads: int, at_once: bool) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "WANDB_MODE": "disabled"}
    logs = [tempfile.TemporaryFile() for _ in commands]  # files, not pipes: a full pipe would stall a step
    start = time.perf_counter()
    if at_once:
        running = [subprocess.Popen(c, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
                   for c, log in zip(commands, logs)]
        codes = [p.wait() for p in running]
    else:
        codes = [subprocess.call(c, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
                 for c, log in zip(commands, logs)]
    seconds = time.perf_counter() - start
    failed = [log for code, log in zip(codes, logs) if code != 0]
    if failed:
        failed[0].seek(0)
        sys.exit(f"a step failed:\n{failed[0].read().decode(errors='replace')[-2000:]}")
    return seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="copies of each step (default: cores)")
    parser.add_argument("--eval-problems", type=int, default=8)
    parser.add_argument("--train-steps", type=int, default=60)
    args = parser.parse_args(argv)
    print(f"| step | {args.jobs} jobs one after another, {args.jobs} threads each (s) "
          f"| {args.jobs} jobs at once, 1 thread each (s) | work per second, at once / one after another |")
    print("|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, build, size in (("eval.py", _eval, args.eval_problems), ("train.py", _train, args.train_steps)):
            walls = []
            for at_once in (False, True):
                commands = [build(Path(tmp) / f"{name}-{at_once}-{i}", size) for i in range(args.jobs)]
                walls.append(_wall(commands, 1 if at_once else args.jobs, at_once))
            label = f"`{name}` ({size} problems x 64 samples)" if name == "eval.py" else f"`{name}` ({size} steps)"
            print(f"| {label} | {walls[0]:.1f} | {walls[1]:.1f} | {walls[0] / walls[1]:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
