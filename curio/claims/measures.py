"""One flat dict of numbers per job, read from its eval run and its probe file.

Keys (``<set>`` is ``id`` or ``ood``):

- ``<set>/avg``: mean correctness over all samples (avg@n, equal to pass@1);
- ``<set>/pass@k`` for k = 1, 2, 4, ..., n;
- ``<set>/maj``: majority-vote accuracy (maj@n);
- ``<set>/gen_entropy``: mean next-token entropy (nats, T = 1) along the model's own samples;
- ``<set>/distinct_answers``: different final answers per problem;
- ``<set>/distinct_correct``: different correct solution texts per problem (orders of work);
- ``<set>/unboxed_correct``: the share of samples graded correct that hold no ``\\boxed{}`` answer
  (the ``math`` grader judges such a response's last expression; see :func:`sample_statistics`);
- ``<set>/avg_eval_se``, ``<set>/pass_n_eval_se``: the standard errors that sampling alone puts on
  avg@n and pass@n (see :func:`evaluation_se`);
- ``H/<label>``: teacher-forced entropy on held-out demonstrations, per token label (choice,
  phrase, result, format) and per group of labels (``fork``: choice and phrase; ``determined``:
  result and format), each a mean over its tokens;
- ``tau/<label>``, ``tau_at_max/<label>``, ``tau_at_min/<label>``, ``tau_gated/<label>``: the
  entropy-guided rule's mean tau on the model's own distribution, and the shares of tokens
  clamped at the top / bottom of the range or gated;
- from the training log (trained models only): ``train/val_ce`` (held-out CE at the end),
  ``train/<metric>`` for ``w``, ``tau``, ``tau_p90``, ``tau_gated``, ``teacher_entropy``, ``entropy``
  (mean over the logged optimizer steps, where the loss logs it);
- from an RL run's log: ``rl/<metric>_start`` and ``rl/<metric>_end``, the means over its first and
  last :data:`RL_WINDOW` rollout steps of ``reward_mean`` and ``rollout_entropy`` (the mean
  next-token entropy of its own samples).
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from curio.claims.plan import Job
from curio.evaluation.answers import last_boxed
from curio.evaluation.compare import per_problem_accuracy
from curio.files import jsonl_lines, read_text


def sample_statistics(samples_file: Path) -> dict[str, dict[str, float]]:
    """``{benchmark: {"distinct_correct": ..., "unboxed_correct": ...}}`` in one pass over an eval
    run's ``samples.jsonl``:

    - ``distinct_correct``: the mean over problems of the number of different correct responses
      (exact text, stripped);
    - ``unboxed_correct``: the share of samples graded correct whose response holds no boxed
      answer. In a world where every intermediate expression equals the answer (the fork world)
      such a sample may have stopped solving anywhere: a model that earns accuracy this way shows
      here (protocol amendment A11)."""
    correct: dict[str, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
    problems: dict[str, set[int]] = defaultdict(set)
    totals: dict[str, int] = defaultdict(int)
    unboxed: dict[str, int] = defaultdict(int)
    for line in jsonl_lines(read_text(samples_file)):  # the same reading as per_problem_accuracy
        if not line:
            continue
        sample = json.loads(line)
        benchmark = sample["benchmark"]
        problems[benchmark].add(sample["problem"])
        totals[benchmark] += 1
        if sample["correct"]:
            correct[benchmark][sample["problem"]].add(sample["response"].strip())
            unboxed[benchmark] += last_boxed(sample["response"]) is None
    return {benchmark: {"distinct_correct": sum(len(correct[benchmark][p]) for p in seen) / len(seen),
                        "unboxed_correct": unboxed[benchmark] / totals[benchmark]}
            for benchmark, seen in problems.items()}


def evaluation_se(shares: list[float], n: int) -> tuple[float, float]:
    """The standard errors of a model's avg@n and pass@n on a benchmark over draws of its ``n``
    samples per problem (the same weights sampled again), from each problem's share p of correct
    samples (``shares``): avg@n's is sqrt(sum p (1 - p) / (n - 1)) / N, the unbiased binomial
    variance of each problem's mean; pass@n's is sqrt(sum q (1 - q)) / N with q = 1 - (1 - p)^n,
    the chance that some sample is correct. The second is a plug-in estimate (p for the problem's
    true share): a problem no sample solved adds nothing, so it is low where many problems are
    solved very rarely, and it can be high for problems solved a little more often."""
    if not shares:
        return float("nan"), float("nan")
    avg_var = sum(p * (1 - p) for p in shares) / (n - 1) if n > 1 else float("nan")
    pass_var = sum((1 - (1 - p) ** n) * (1 - p) ** n for p in shares)
    return math.sqrt(avg_var) / len(shares), math.sqrt(pass_var) / len(shares)


TRAIN_METRICS = ("w", "tau", "tau_p90", "tau_gated", "teacher_entropy", "entropy")
RL_METRICS = ("reward_mean", "rollout_entropy")
#: Rollout steps averaged at the start and at the end of an RL run.
RL_WINDOW = 10


def rl_curve(metrics_csv: Any, metric: str) -> list[tuple[int, float]]:
    """``(optimizer step, value)`` of ``train/<metric>`` at every rollout step of an RL run's log."""
    with metrics_csv.open(encoding="utf-8") as lines:
        return [(int(row["step"]), float(row[f"train/{metric}"])) for row in csv.DictReader(lines)
                if row.get(f"train/{metric}")]


def training_summary(metrics_csv: Any) -> dict[str, float]:
    """Means over optimizer steps of :data:`TRAIN_METRICS` and the last held-out CE of a run."""
    with metrics_csv.open(encoding="utf-8") as lines:
        rows = list(csv.DictReader(lines))
    out: dict[str, float] = {}
    for name in TRAIN_METRICS:
        values = [float(row[f"train/{name}"]) for row in rows if row.get(f"train/{name}")]
        if values:
            out[f"train/{name}"] = sum(values) / len(values)
    val = [float(row["val/ce"]) for row in rows if row.get("val/ce")]
    if val:
        out["train/val_ce"] = val[-1]
    return out


def collect(job: Job) -> dict[str, float]:
    """Every number the report uses for ``job``."""
    results = json.loads((job.eval_dir / "results.json").read_text(encoding="utf-8"))
    out: dict[str, float] = {}
    shares = per_problem_accuracy(job.eval_dir)
    per_sample = sample_statistics(job.eval_dir / "samples.jsonl")
    for benchmark, name in job.world.benchmarks.items():
        metrics = results["benchmarks"][benchmark]["metrics"]
        n = results["benchmarks"][benchmark]["n"]
        out[f"{name}/avg"] = metrics[f"avg@{n}"]
        out[f"{name}/maj"] = metrics[f"maj@{n}"]
        out.update({f"{name}/{key}": value for key, value in metrics.items() if key.startswith("pass@")})
        out[f"{name}/gen_entropy"] = metrics.get("token_entropy", float("nan"))
        out[f"{name}/distinct_answers"] = metrics["distinct_answers"]
        for key in ("distinct_correct", "unboxed_correct"):
            out[f"{name}/{key}"] = per_sample.get(benchmark, {}).get(key, float("nan"))
        out[f"{name}/avg_eval_se"], out[f"{name}/pass_n_eval_se"] = evaluation_se(
            list(shares.get(benchmark, {}).values()), n)
    metrics_csv = job.train_dir / "csv" / "metrics.csv"
    if metrics_csv.is_file():
        out.update(training_summary(metrics_csv))
        for metric in RL_METRICS if job.stage == "rl" else ():
            values = [value for _, value in rl_curve(metrics_csv, metric)]
            if values:
                out[f"rl/{metric}_start"] = sum(values[:RL_WINDOW]) / len(values[:RL_WINDOW])
                out[f"rl/{metric}_end"] = sum(values[-RL_WINDOW:]) / len(values[-RL_WINDOW:])
    probe = json.loads(job.probe_file.read_text(encoding="utf-8"))
    for label, stats in probe["labels"].items():
        out[f"H/{label}"] = stats["entropy"]["mean"]
        out[f"tau/{label}"] = stats["tau"]["mean"]
        out[f"tau_at_max/{label}"] = stats["at_max"]
        out[f"tau_at_min/{label}"] = stats["at_min"]
        out[f"tau_gated/{label}"] = stats["gated"]
    return out


def tau_histograms(job: Job) -> dict[str, Any]:
    """``{label: counts}`` of the probe's tau histogram, plus ``range``."""
    probe = json.loads(job.probe_file.read_text(encoding="utf-8"))
    return {"range": probe["tau_range"], **{k: v["tau_histogram"] for k, v in probe["labels"].items()}}
