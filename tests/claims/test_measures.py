"""The evaluation's own sampling noise (``curio.claims.measures.evaluation_se``), against float64
references written from its definition: exact expectations over every outcome of n draws."""

from __future__ import annotations

import json
import math
import random

import pytest

from curio.claims.measures import evaluation_se, sample_statistics
from curio.evaluation.compare import per_problem_accuracy


def se_of(path, benchmark: str, n: int) -> tuple[float, float]:
    return evaluation_se(list(per_problem_accuracy(path.parent).get(benchmark, {}).values()), n)


def write_samples(path, counts: list[int], n: int, benchmark: str = "fork_id") -> None:
    rng = random.Random(0)
    rows = []
    for problem, correct in enumerate(counts):
        flags = [True] * correct + [False] * (n - correct)
        rng.shuffle(flags)
        rows += [{"benchmark": benchmark, "problem": problem, "sample": i, "correct": flag} for i, flag in enumerate(flags)]
    rows.append({"benchmark": "other", "problem": 0, "sample": 0, "correct": True})  # another benchmark: ignored
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_per_problem_accuracy_reads_samples_whose_text_holds_unicode_line_separators(tmp_path):
    """eval.py writes samples.jsonl with ensure_ascii=False, so a sampled U+0085 or U+2028 stays raw
    in its line (a study's record once failed on one)."""
    rows = [{"benchmark": "fork_id", "problem": p, "sample": 0, "response": f"x\x85y\u2028z{p}", "correct": p == 1}
            for p in range(3)]
    path = tmp_path / "samples.jsonl"
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    assert per_problem_accuracy(tmp_path) == {"fork_id": {0: 0.0, 1: 1.0, 2: 0.0}}


def binomial(n: int, p: float) -> list[float]:
    return [math.comb(n, c) * p**c * (1 - p) ** (n - c) for c in range(n + 1)]


@pytest.mark.parametrize("n", [2, 5, 64])
@pytest.mark.parametrize("p", [0.0, 0.01, 0.3, 0.5, 0.97, 1.0])
def test_avg_se_squared_is_unbiased_for_the_variance_of_a_problems_mean(tmp_path, n, p):
    # One problem: E over c ~ Binomial(n, p) of the estimated variance equals Var(c / n) = p (1 - p) / n.
    expected = 0.0
    for c, weight in enumerate(binomial(n, p)):
        write_samples(tmp_path / "samples.jsonl", [c], n)
        avg_se, _ = se_of(tmp_path / "samples.jsonl", "fork_id", n)
        expected += weight * avg_se**2
    assert expected == pytest.approx(p * (1 - p) / n, rel=1e-9, abs=1e-15)


def test_pass_n_se_is_the_spread_of_any_sample_being_correct(tmp_path):
    n, counts = 8, [0, 1, 4, 8, 2]
    write_samples(tmp_path / "samples.jsonl", counts, n)
    avg_se, pass_se = se_of(tmp_path / "samples.jsonl", "fork_id", n)
    # The chance that some of n fresh draws is correct, with the observed share as the problem's rate,
    # by summing over outcomes (not by the closed form the code uses).
    variance = 0.0
    for c in counts:
        q = sum(w for k, w in enumerate(binomial(n, c / n)) if k > 0)
        variance += q * (1 - q)
    assert pass_se == pytest.approx(math.sqrt(variance) / len(counts), rel=1e-12)
    assert avg_se == pytest.approx(math.sqrt(sum((c / n) * (1 - c / n) for c in counts) / (n - 1)) / len(counts), rel=1e-12)


def test_all_solved_or_none_solved_has_no_sampling_noise(tmp_path):
    write_samples(tmp_path / "samples.jsonl", [0, 3, 0, 3], 3)
    assert se_of(tmp_path / "samples.jsonl", "fork_id", 3) == (0.0, 0.0)
    assert all(math.isnan(v) for v in se_of(tmp_path / "samples.jsonl", "fork_ood", 3))  # no samples


def test_sample_statistics_against_a_count_by_hand(tmp_path):
    """fork_id's problem 0 has 5 samples: one correct without a box (the last expression judged),
    one correct and boxed, one unboxed but wrong, one boxed wrong, one with an empty box (no
    answer); its problem 1 has two correct samples that differ only in surrounding spaces and one
    wrong. fork_ood has one sample, correct and unboxed; a benchmark without samples is absent."""
    rows = [(0, "so 2*6", True), (0, "\\boxed{12}", True), (0, "so 2*7", False), (0, "\\boxed{13}", False),
            (0, "\\boxed{}", True), (1, " \\boxed{4}", True), (1, "\\boxed{4}\n", True), (1, "\\boxed{5}", False)]
    lines = [{"benchmark": "fork_id", "problem": p, "sample": i, "response": r, "correct": c} for i, (p, r, c) in enumerate(rows)]
    lines.append({"benchmark": "fork_ood", "problem": 0, "sample": 0, "response": "so 1", "correct": True})
    path = tmp_path / "samples.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in lines), encoding="utf-8")
    stats = sample_statistics(path)
    assert stats["fork_id"]["unboxed_correct"] == pytest.approx(2 / 8)
    assert stats["fork_id"]["distinct_correct"] == pytest.approx((3 + 1) / 2)  # problem 1's two are one text
    assert stats["fork_ood"] == {"unboxed_correct": 1.0, "distinct_correct": 1.0}
    assert set(stats) == {"fork_id", "fork_ood"}
