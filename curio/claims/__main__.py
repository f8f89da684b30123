"""``python -m curio.claims [--preset full|quick|smoke|fork_full|fork_quick|fork_smoke] [--dir DIR] [--report FILE] [--report-only] [--workers N]``

Runs every claims experiment for every seed of the preset (resumable: rerun the same command after
an interruption), evaluates and probes each model and the base model, then writes the report.
``full`` (3 seeds, 64 samples) writes docs/results_tiny.md and ``fork_full`` (the fork world's study,
SFT then GRPO, docs/claims_v2_protocol.md) docs/results_fork.md; the others write into their folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

from curio.claims.plan import PRESETS, jobs
from curio.config import ROOT


def _commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}+uncommitted changes" if dirty else head


def _machine() -> str:
    import torch

    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores, "
            f"Python {platform.python_version()}, torch {torch.__version__}")


def _read_commits(path: Path) -> list[str]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []


def _exit_on_sigterm(signum: int, frame) -> None:
    """SIGTERM as an exception in the main thread, so that the runner stops its running steps."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m curio.claims", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="full")
    parser.add_argument("--dir", type=Path, help="study folder (default outputs/claims/<preset>)")
    parser.add_argument("--report", type=Path, help="report file (default docs/results_tiny.md for full, "
                                                      "docs/results_fork.md for fork_full, else in <dir>)")
    parser.add_argument("--report-only", action="store_true", help="rewrite the report from finished runs")
    parser.add_argument("--workers", type=int, default=1,
                        help="experiment/seed chains (an SFT model, then its RL run) run at once, each step "
                             "with cores // N threads (default 1)")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers {args.workers}: must be at least 1")
    if args.workers > 1:  # read by this process's torch (probes) and every step's subprocess
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // args.workers)))

    from curio.claims.measures import collect
    from curio.claims.report import write_report
    from curio.claims.runner import StepFailed, StudyBusy, read_timings, run_study, study_lock

    preset = PRESETS[args.preset]
    root = (args.dir or ROOT / "outputs" / "claims" / preset.name).resolve()
    committed = preset.name in ("full", "fork_full")
    report = args.report or (preset.world.report if committed else root / preset.world.report.name)
    command = "python -m curio.claims" + ("" if preset.name == "full" else f" --preset {preset.name}")
    print(f"claims study '{preset.name}': {len(jobs(preset, root))} models, folder {root}", flush=True)
    commits_file = root / "commits.json"  # the code each (resumed) invocation ran, for the report
    commit = _commit()
    try:
        if args.report_only:
            todo = jobs(preset, root)
        else:
            previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
            try:
                with study_lock(root):
                    commits = _read_commits(commits_file)
                    if commit not in commits:
                        commits_file.write_text(json.dumps([*commits, commit]), encoding="utf-8")
                    todo = run_study(preset, root, args.workers)
            finally:
                signal.signal(signal.SIGTERM, previous)
    except (StepFailed, StudyBusy) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    finished = [job for job in todo if (job.eval_dir / "results.json").is_file() and job.probe_file.is_file()]
    incomplete = {job.key for job in todo if job not in finished}
    if todo[0] not in finished:
        print("error: the base model is not evaluated yet; run without --report-only first", file=sys.stderr)
        sys.exit(1)
    if incomplete:  # --report-only on a study still running: report the experiments done at every seed
        print(f"warning: not finished, left out of the report: {', '.join(sorted(incomplete))}", file=sys.stderr)
    table: dict[str, list] = {}
    for job in todo:
        if job.key not in incomplete:
            table.setdefault(job.key, []).append(collect(job))
    timings = read_timings(root)
    total = sum(seconds for steps in timings.values() for seconds in steps.values())
    provenance = {"commit": ", ".join(_read_commits(commits_file)) or commit, "report_commit": commit,
                  "machine": _machine(),
                  "wall": f"{total / 60:.0f} min of train/eval/probe steps "
                          "(summed over resumes and over jobs run side by side)"}
    started = time.perf_counter()
    answers = write_report(preset, table, {j.key: j for j in todo if j.seed == preset.seeds[0]},
                           report, command, provenance)
    for answer in answers:
        print(f"Q{answer.number} {answer.verdict:12s} {answer.question}")
    print(f"wrote {report} ({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
