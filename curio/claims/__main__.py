"""``python -m curio.claims [--preset full|quick|smoke|fork_full|fork_quick|fork_smoke] [--dir DIR] [--report FILE] [--report-only] [--workers N]``

Runs every claims experiment for every seed of the preset (resumable: rerun the same command after
an interruption), evaluates and probes each model and the base model, records it, then writes the
report from the records. ``full`` (3 seeds, 64 samples) writes docs/results_tiny.md and
``fork_full`` (the fork world's study, SFT then GRPO, docs/claims_v2_protocol.md)
docs/results_fork.md, with their records in docs/results_<world>/records/ (commit them: a study
continues from them on another machine); the others write into their folder.
"""

from __future__ import annotations

import argparse
import json
import os
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
    parser.add_argument("--report-only", action="store_true", help="rewrite the report from the records")
    parser.add_argument("--workers", type=int, default=1,
                        help="experiment/seed chains (an SFT model, then its RL run) run at once, each step "
                             "with cores // N threads (default 1)")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers {args.workers}: must be at least 1")
    if args.workers > 1:  # read by this process's torch (probes) and every step's subprocess
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // args.workers)))

    from curio.claims.records import COMMITS, BadRecord, read_commits, read_record, records_dir
    from curio.claims.report import write_report
    from curio.claims.runner import StepFailed, StudyBusy, run_study, study_lock

    preset = PRESETS[args.preset]
    root = (args.dir or ROOT / "outputs" / "claims" / preset.name).resolve()
    committed = preset.name in ("full", "fork_full")
    report = args.report or (preset.world.report if committed else root / preset.world.report.name)
    records = records_dir(report)
    command = "python -m curio.claims" + ("" if preset.name == "full" else f" --preset {preset.name}")
    todo = jobs(preset, root)
    print(f"claims study '{preset.name}': {len(todo)} models, folder {root}, records {records}", flush=True)
    commit = _commit()
    try:
        if not args.report_only:
            previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
            try:
                with study_lock(root):
                    commits = read_commits(root)  # the code each (resumed) invocation ran, for the records
                    if commit not in commits:
                        (root / COMMITS).write_text(json.dumps([*commits, commit]), encoding="utf-8")
                    run_study(preset, root, records, args.workers)
            finally:
                signal.signal(signal.SIGTERM, previous)
        recorded = {job: read_record(records, job, preset) for job in todo}
    except (StepFailed, StudyBusy, BadRecord) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    if recorded[todo[0]] is None:
        print(f"error: the base model has no record in {records} yet; run without --report-only first",
              file=sys.stderr)
        sys.exit(1)
    incomplete = {job.key for job, record in recorded.items() if record is None}
    if incomplete:  # --report-only on a study still running: report the experiments done at every seed
        print(f"warning: not finished, left out of the report: {', '.join(sorted(incomplete))}", file=sys.stderr)
    by_model: dict[str, list[dict]] = {}
    for job, record in recorded.items():
        if job.key not in incomplete:
            by_model.setdefault(job.key, []).append(record)
    shown = [record for seeds in by_model.values() for record in seeds]
    total = sum(seconds for record in shown for seconds in record["steps"].values())
    provenance = {"commit": ", ".join(dict.fromkeys(c for record in shown for c in record["commits"])) or commit,
                  "report_commit": commit,
                  "machine": "; ".join(dict.fromkeys(record["machine"] for record in shown)),
                  "wall": f"{total / 60:.0f} min of train/eval/probe steps (each finished step's "
                          "wall time, summed over jobs run side by side; a step interrupted and rerun "
                          "counts its last run)"}
    started = time.perf_counter()
    answers = write_report(preset, by_model, report, command, provenance)
    for answer in answers:
        print(f"Q{answer.number} {answer.verdict:12s} {answer.question}")
    print(f"wrote {report} ({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
