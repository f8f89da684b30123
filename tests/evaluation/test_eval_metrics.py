"""pass@k against brute force, majority vote, distinct-n, per-benchmark and per-group tables."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter

import pytest

from curio.evaluation import (
    Grade,
    benchmark_metrics,
    distinct_n,
    group_means,
    majority_at_k,
    pass_at_k,
    pass_k_values,
)


def brute_force_pass_at_k(outcomes: list[bool], k: int) -> float:
    subsets = list(itertools.combinations(outcomes, k))
    return sum(any(s) for s in subsets) / len(subsets)


def test_pass_at_k_matches_enumeration_of_all_subsets():
    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(1, 8)
        c = rng.randint(0, n)
        outcomes = [True] * c + [False] * (n - c)
        rng.shuffle(outcomes)
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(
                brute_force_pass_at_k(outcomes, k), abs=1e-12
            )


def test_pass_at_k_is_stable_where_binomials_overflow_floats():
    assert pass_at_k(2000, 1, 1) == pytest.approx(1 / 2000)
    exact = 1 - math.comb(1600, 100) / math.comb(2000, 100)  # exact integers, then one division
    assert pass_at_k(2000, 400, 100) == pytest.approx(exact, rel=1e-12)
    assert pass_at_k(5, 0, 3) == 0.0
    assert pass_at_k(5, 3, 3) == 1.0


@pytest.mark.parametrize("n, c, k", [(0, 0, 1), (4, 5, 1), (4, 2, 0), (4, 2, 5), (4, -1, 1)])
def test_pass_at_k_rejects_impossible_arguments(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def test_pass_k_values_are_powers_of_two_then_n():
    assert pass_k_values(1) == [1]
    assert pass_k_values(8) == [1, 2, 4, 8]
    assert pass_k_values(6) == [1, 2, 4, 6]
    assert pass_k_values(32) == [1, 2, 4, 8, 16, 32]


def test_majority_vote_ignores_missing_answers_and_splits_ties():
    assert majority_at_k(["3", None, None, "3", "4"], [True, False, False, True, False], 5) == 1.0
    # "4" and "3" both appear twice: a random tie-break is right half the time.
    assert majority_at_k(["4", "3", "3", "4"], [False, True, True, False], 4) == 0.5
    assert majority_at_k([None, None], [False, False], 2) == 0.0
    # A timed-out sample with the winning answer does not sink it.
    assert majority_at_k(["7", "7", "1"], [False, True, False], 3) == 1.0


def brute_force_majority(answers, correct, k) -> float:
    """The definition, one subset at a time: ties split evenly among the tied answers."""
    good = {a for a, ok in zip(answers, correct) if a is not None and ok}
    total = 0.0
    subsets = list(itertools.combinations(range(len(answers)), k))
    for subset in subsets:
        votes = Counter(answers[i] for i in subset if answers[i] is not None)
        if not votes:
            continue
        top = max(votes.values())
        leaders = [a for a, c in votes.items() if c == top]
        total += sum(a in good for a in leaders) / len(leaders)
    return total / len(subsets)


@pytest.mark.parametrize("seed", range(40))
def test_majority_at_k_equals_brute_force_over_all_subsets(seed):
    rng = random.Random(seed)
    n = rng.randint(1, 9)
    pool = ["1", "2", "3", "4", None][: rng.randint(1, 5)]
    answers = [rng.choice(pool) for _ in range(n)]
    truth = rng.choice([a for a in pool if a is not None] or ["1"])
    correct = [a == truth for a in answers]
    for k in range(1, n + 1):
        assert majority_at_k(answers, correct, k) == pytest.approx(brute_force_majority(answers, correct, k), abs=1e-12)
    # k = 1 is the share of samples whose answer is a correct one (pass@1 when verdicts agree).
    assert majority_at_k(answers, correct, 1) == pytest.approx(sum(correct) / n)


def test_majority_at_k_is_fast_at_64_samples():
    import time

    rng = random.Random(0)
    answers = [rng.choice([str(i) for i in range(20)] + [None]) for _ in range(64)]
    correct = [a == "3" for a in answers]
    start = time.perf_counter()
    values = [majority_at_k(answers, correct, k) for k in pass_k_values(64)]
    assert time.perf_counter() - start < 2.0 and all(0 <= v <= 1 for v in values)


def test_distinct_n():
    assert distinct_n([["a", "b", "a", "b"]], 1) == 0.5
    assert distinct_n([["a", "b", "a", "b"]], 2) == pytest.approx(2 / 3)
    assert distinct_n([["a", "b"], ["a", "b"]], 2) == 0.5
    assert distinct_n([["a"]], 2) == 0.0


def grade(correct: bool, answer: str | None, **kw) -> Grade:
    return Grade(correct=correct, extracted=answer, **kw)


def test_benchmark_metrics_on_a_hand_computed_case():
    grades = [
        [grade(True, "1"), grade(False, "2"), grade(True, "1"), grade(False, None)],
        [
            grade(False, "5"),
            grade(False, "5"),
            grade(False, None, timed_out=True),
            grade(True, "6"),
        ],
    ]
    metrics = benchmark_metrics(
        grades,
        response_lengths=[[10, 20, 30, 40], [50, 60, 70, 80]],
        truncated=[[False, False, False, True], [False, False, True, True]],
        texts=[["a b", "a b", "a c", "d"], ["x", "x", "x", "x"]],
    )
    assert metrics["avg@4"] == metrics["accuracy"] == 3 / 8
    assert metrics["pass@1"] == pytest.approx(3 / 8)
    assert metrics["pass@2"] == pytest.approx((5 / 6 + 1 / 2) / 2)
    assert metrics["pass@4"] == 1.0
    assert metrics["maj@4"] == 0.5
    assert metrics["distinct_answers"] == 2.0
    assert metrics["grading_timeouts"] == 1 / 8
    assert metrics["grading_errors"] == 0.0
    assert metrics["mean_length"] == 45.0
    assert metrics["truncated_share"] == 3 / 8
    assert metrics["distinct_1"] == pytest.approx((4 / 7 + 1 / 4) / 2)
    assert metrics["distinct_2"] == pytest.approx((2 / 3 + 0.0) / 2)


def test_benchmark_metrics_needs_equal_sample_counts():
    with pytest.raises(ValueError, match="same"):
        benchmark_metrics([[grade(True, "1")], [grade(True, "1"), grade(True, "1")]])


def test_group_means_are_unweighted_and_skip_metrics_not_everyone_has():
    per_benchmark = {
        "aime24": {"accuracy": 0.2, "avg@8": 0.2, "pass@8": 0.5},
        "math500": {"accuracy": 0.8, "avg@8": 0.8, "pass@8": 0.9},
        "gpqa": {"accuracy": 0.4, "avg@8": 0.4, "pass@8": 0.7},
        "mmlu_pro": {"accuracy": 0.6, "avg@1": 0.6},
    }
    groups = {"aime24": "id", "math500": "id", "gpqa": "ood", "mmlu_pro": "ood"}
    means = group_means(per_benchmark, groups)
    assert means["id"] == pytest.approx({"accuracy": 0.5, "avg@8": 0.5, "pass@8": 0.7})
    assert means["ood"] == pytest.approx({"accuracy": 0.5})
    with pytest.raises(ValueError, match="no group"):
        group_means({"x": {"avg@8": 1.0}}, {})
