"""pass@k against brute force, majority vote, distinct-n, per-benchmark and per-group tables."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from curio.evaluation import (
    Grade,
    benchmark_metrics,
    distinct_n,
    group_means,
    majority_correct,
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


def test_majority_vote_ignores_missing_answers_and_breaks_ties_by_first_appearance():
    assert majority_correct(["3", None, None, "3", "4"], [True, False, False, True, False])
    # "4" and "3" both appear twice; "4" appeared first.
    assert not majority_correct(["4", "3", "3", "4"], [False, True, True, False])
    assert majority_correct(["3", "4", "4", "3"], [True, False, False, True])
    assert not majority_correct([None, None], [False, False])
    # A timed-out sample with the winning answer does not sink it.
    assert majority_correct(["7", "7", "1"], [False, True, False])


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
