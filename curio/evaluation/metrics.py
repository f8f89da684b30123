"""Benchmark metrics over n graded samples per problem (spec section 9).

All per-benchmark numbers are means over problems of a per-problem quantity, so every problem
weighs the same whatever its number of samples; group numbers are unweighted means over benchmarks.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence

import numpy as np

from curio.evaluation.grading import Grade


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of the chance that at least one of k samples is correct.

    ``1 - C(n-c, k) / C(n, k)`` given ``c`` correct among ``n`` samples (Chen et al., 2021), in the
    product form ``1 - prod_{i=n-c+1}^{n} (1 - k/i)``, which never forms the huge binomials.
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def pass_k_values(n: int) -> list[int]:
    """The k reported for n samples: powers of two below n, then n itself (1, 2, 4, ..., n)."""
    ks = [1 << p for p in range(n.bit_length()) if 1 << p < n]
    return ks + [n]


def majority_at_k(answers: Sequence[str | None], correct: Sequence[bool], k: int) -> float:
    """maj@k of one problem: the chance that a majority vote over k of its n samples is correct.

    The same subset convention as :func:`pass_at_k`: the exact mean over all ``C(n, k)`` subsets
    of k samples. Samples without an answer do not vote (a subset with no answer is wrong); a tie
    between answers is broken uniformly at random (a tie of a correct and a wrong answer counts
    1/2); an answer counts as correct if any of its samples was graded correct (identical answers
    share a verdict unless grading of one of them failed).

    Computed by counting, not by enumerating subsets: for each correct answer a and each number x
    of its samples in the subset, the ways to fill the other k - x places with every other answer
    at most x times (a dynamic program over answers that also counts the answers tied at x) and any
    number of unanswered samples.
    """
    n = len(answers)
    if len(correct) != n or not 1 <= k <= n:
        raise ValueError(f"need equally many answers and verdicts and 1 <= k <= n, got n={n}, k={k}")
    counts: Counter[str] = Counter(a for a in answers if a is not None)
    good = {a for a, ok in zip(answers, correct) if a is not None and ok}
    unanswered = n - sum(counts.values())
    wins = 0.0
    for answer, c_a in counts.items():
        if answer not in good:
            continue
        others = [c for a, c in counts.items() if a != answer]
        for x in range(1, min(c_a, k) + 1):
            rest = k - x
            # ways[t, ties]: subsets of t samples of the other answers, none above x, `ties` at x.
            ways = np.zeros((rest + 1, len(others) + 1))
            ways[0, 0] = 1.0
            for c_b in others:
                new = np.zeros_like(ways)
                for y in range(min(c_b, x, rest) + 1):
                    if y == x:
                        new[y:, 1:] += math.comb(c_b, y) * ways[: rest + 1 - y, :-1]
                    else:
                        new[y:, :] += math.comb(c_b, y) * ways[: rest + 1 - y, :]
                ways = new
            free = np.array([math.comb(unanswered, rest - t) for t in range(rest + 1)], dtype=float)
            by_ties = (ways * free[:, None]).sum(axis=0)
            wins += math.comb(c_a, x) * float((by_ties / np.arange(1, len(others) + 2)).sum())
    return wins / math.comb(n, k)


def distinct_n(sequences: Sequence[Sequence[Hashable]], n: int) -> float:
    """Distinct-n: unique n-grams over all n-grams across ``sequences`` (0 when there are none)."""
    grams = [tuple(seq[i : i + n]) for seq in sequences for i in range(len(seq) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def benchmark_metrics(
    grades: Sequence[Sequence[Grade]],
    response_lengths: Sequence[Sequence[int]] | None = None,
    truncated: Sequence[Sequence[bool]] | None = None,
    texts: Sequence[Sequence[str]] | None = None,
) -> dict[str, float]:
    """All metrics of one benchmark from its grades, ``grades[problem][sample]``.

    Every problem must have the same number of samples n. Keys:

    * ``avg@n``: mean correctness over all samples (the headline number), also under the key
      ``accuracy`` so that groups mixing different n (MMLU-Pro uses n = 1) still average it;
    * ``pass@k`` for k in :func:`pass_k_values` (``pass@1`` equals ``avg@n``);
    * ``maj@k`` for the same k: the chance that a majority vote over k samples is correct
      (:func:`majority_at_k`; ties broken at random);
    * ``distinct_answers``: mean number of different extracted answers per problem;
    * ``grading_errors`` / ``grading_timeouts``: share of samples whose grading failed / timed out
      (scored wrong);
    * with ``response_lengths`` (tokens): ``mean_length``; with ``truncated`` (hit the token
      limit): ``truncated_share``;
    * with ``texts``: ``distinct_1`` .. ``distinct_4``, distinct-n over the whitespace tokens of
      the n samples of a problem, averaged over problems (how different a problem's samples are).
    """
    if not grades:
        raise ValueError("no problems to score")
    n = len(grades[0])
    if n == 0 or any(len(samples) != n for samples in grades):
        raise ValueError(
            f"every problem needs the same, positive number of samples (first has {n})"
        )
    counts = [sum(g.correct for g in samples) for samples in grades]
    flat = [g for samples in grades for g in samples]
    accuracy = sum(counts) / len(flat)
    metrics = {
        "accuracy": accuracy,
        f"avg@{n}": accuracy,
        **{f"pass@{k}": _mean([pass_at_k(n, c, k) for c in counts]) for k in pass_k_values(n)},
        **{
            f"maj@{k}": _mean([majority_at_k([g.extracted for g in s], [g.correct for g in s], k) for s in grades])
            for k in pass_k_values(n)
        },
        "distinct_answers": _mean(
            [len({g.extracted for g in s if g.extracted is not None}) for s in grades]
        ),
        "grading_errors": _mean([g.error is not None for g in flat]),
        "grading_timeouts": _mean([g.timed_out for g in flat]),
    }
    if response_lengths is not None:
        metrics["mean_length"] = _mean([x for lengths in response_lengths for x in lengths])
    if truncated is not None:
        metrics["truncated_share"] = _mean([t for flags in truncated for t in flags])
    if texts is not None:
        tokenized = [[text.split() for text in samples] for samples in texts]
        for order in range(1, 5):
            metrics[f"distinct_{order}"] = _mean([distinct_n(s, order) for s in tokenized])
    return metrics


def group_means(
    per_benchmark: Mapping[str, Mapping[str, float]], groups: Mapping[str, str]
) -> dict[str, dict[str, float]]:
    """Unweighted mean over the benchmarks of each group, for the metrics all of them report.

    Args:
        per_benchmark: benchmark name -> its metrics (from :func:`benchmark_metrics`).
        groups: benchmark name -> group (``"id"`` / ``"ood"``).

    Returns:
        group -> metric -> mean. A metric missing from one benchmark of a group (``pass@8`` where
        one benchmark used n = 1) is left out of that group rather than averaged over a subset.
    """
    members: dict[str, list[Mapping[str, float]]] = {}
    for name, metrics in per_benchmark.items():
        if name not in groups:
            raise ValueError(f"benchmark {name!r} has no group")
        members.setdefault(groups[name], []).append(metrics)
    means = {}
    for group, rows in members.items():
        shared = [key for key in rows[0] if all(key in row for row in rows)]
        means[group] = {key: _mean([row[key] for row in rows]) for key in shared}
    return means
