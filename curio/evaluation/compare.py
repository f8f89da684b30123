"""Two evaluation runs of the same benchmarks, compared problem by problem:
``python -m curio.evaluation.compare <run dir A> <run dir B> [--resamples 10000] [--seed 0]``.

For each benchmark both runs scored, the difference B - A in per-problem accuracy (the mean
correctness of a problem's samples: avg@n, pass@1), averaged over problems, with a 95% paired
bootstrap interval over problems (resampling problems with replacement, both runs together).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import defaultdict
from pathlib import Path

from curio.errors import UserError
from curio.files import jsonl_lines


def per_problem_accuracy(run_dir: Path) -> dict[str, dict[int, float]]:
    """``{benchmark: {problem index: mean correctness of its samples}}`` from ``samples.jsonl``."""
    path = Path(run_dir) / "samples.jsonl"
    if not path.is_file():
        raise UserError(f"{path}: no such file (an eval.py run dir holds one)")
    scores: dict[str, dict[int, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for line in jsonl_lines(path.read_text(encoding="utf-8")):
        if not line:
            continue
        sample = json.loads(line)
        scores[sample["benchmark"]][sample["problem"]].append(bool(sample["correct"]))
    return {b: {p: sum(v) / len(v) for p, v in problems.items()} for b, problems in scores.items()}


def paired_bootstrap(a: list[float], b: list[float], resamples: int = 10_000, seed: int = 0) -> tuple[float, float, float]:
    """``(mean of b - a, 2.5th, 97.5th percentile)`` of the mean difference over resampled problems."""
    if len(a) != len(b) or not a:
        raise ValueError("need the same, non-zero number of problems in both runs")
    diffs = [y - x for x, y in zip(a, b)]
    rng = random.Random(seed)
    n = len(diffs)
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    return sum(diffs) / n, means[int(0.025 * resamples)], means[min(resamples - 1, int(0.975 * resamples))]


def compare(run_a: Path, run_b: Path, resamples: int = 10_000, seed: int = 0) -> dict[str, dict[str, float]]:
    """Per shared benchmark: accuracy of A and B (%), B - A and its 95% interval (points)."""
    a, b = per_problem_accuracy(run_a), per_problem_accuracy(run_b)
    out = {}
    for name in sorted(a.keys() & b.keys()):
        problems = sorted(a[name].keys() & b[name].keys())
        xs, ys = [a[name][p] for p in problems], [b[name][p] for p in problems]
        mean, low, high = paired_bootstrap(xs, ys, resamples, seed)
        out[name] = {"problems": len(problems), "a": 100 * sum(xs) / len(xs), "b": 100 * sum(ys) / len(ys),
                     "diff": 100 * mean, "low": 100 * low, "high": 100 * high}
    if not out:
        raise UserError(f"{run_a} and {run_b} share no benchmark")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_a", type=Path)
    parser.add_argument("run_b", type=Path)
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        results = compare(args.run_a, args.run_b, args.resamples, args.seed)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print("| benchmark | problems | A (%) | B (%) | B - A (points) | 95% interval |")
    print("|---|---:|---:|---:|---:|---|")
    for name, r in results.items():
        print(f"| {name} | {r['problems']} | {r['a']:.1f} | {r['b']:.1f} | {r['diff']:+.1f} | [{r['low']:+.1f}, {r['high']:+.1f}] |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
