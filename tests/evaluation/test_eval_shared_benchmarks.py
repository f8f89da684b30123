"""Every file in the authors' benchmark folder, graded end to end.

For each problem, a response that boxes its own ground truth must score (100% on every row), and a
response that boxes another problem's different ground truth must not (near 0%). Thresholds: at
most 5% for math, where distinct truths may be equivalent ("\\frac{1}{2}" and "0.5"); exactly 0% for
multiple choice, where the other truth is always a different label. When written, 0 such answers
were accepted in any file. Truths that normalise identically are skipped when picking "another".

The near-0% check on a math file runs math-verify on every pair (10 ms to several seconds each
here), so it takes an evenly spaced subset of at most ``MATH_SUBSET`` rows per file; the 100% check
covers all rows.
"""

from __future__ import annotations

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from curio.evaluation import Benchmark, Grader
from curio.evaluation.answers import normalize_answer, normalize_choice
from tests.evaluation.locations import REPO_ROOT, SHARED_BENCHMARKS

MATH_SUBSET = 48
MATH_WRONG_MAX = 0.05

pytestmark = pytest.mark.skipif(
    not SHARED_BENCHMARKS.is_dir(), reason=f"{SHARED_BENCHMARKS} not present"
)
FILES = (
    sorted(p.name for p in SHARED_BENCHMARKS.glob("*.parquet"))
    if SHARED_BENCHMARKS.is_dir()
    else []
)


def load(file_name: str) -> Benchmark:
    """Load a shared file through the conf/benchmark YAML that points at it (there must be one)."""
    for yaml in sorted((REPO_ROOT / "conf" / "benchmark").glob("*.yaml")):
        cfg = OmegaConf.create(
            {
                "paths": {"benchmarks_dir": str(SHARED_BENCHMARKS), "assets_dir": str(REPO_ROOT / "assets")},
                "benchmark": OmegaConf.load(yaml),
            }
        )
        if cfg.benchmark.path.endswith("/" + file_name):
            return instantiate(cfg.benchmark)
    raise AssertionError(f"no conf/benchmark YAML reads {file_name}")


def other_truth(truths: list[str], i: int, canonical) -> str:
    """The next problem's ground truth that differs from problem i's (in canonical form)."""
    for step in range(1, len(truths)):
        candidate = truths[(i + step) % len(truths)]
        if canonical(candidate) != canonical(truths[i]):
            return candidate
    raise AssertionError("all ground truths are identical")


def response(answer: str) -> str:
    return f"<think>\nLet me work this out.\n</think>\nThe answer is $\\boxed{{{answer}}}$."


def test_every_shared_file_has_a_config():
    assert FILES, f"no parquet files in {SHARED_BENCHMARKS}"
    for name in FILES:
        load(name)


@pytest.mark.parametrize("file_name", FILES)
def test_own_ground_truth_scores_100_percent(grader: Grader, file_name):
    bench = load(file_name)
    truths = [p.ground_truth for p in bench.problems]
    grades = grader.grade(
        [response(t) for t in truths], truths, bench.grader, require_think_close=True
    )
    failed = [(i, truths[i], g) for i, g in enumerate(grades) if not g.correct]
    assert not failed, f"{len(failed)}/{len(truths)} own truths graded wrong, e.g. {failed[:5]}"


@pytest.mark.parametrize("file_name", FILES)
def test_another_problems_ground_truth_scores_near_0_percent(grader: Grader, file_name):
    bench = load(file_name)
    truths = [p.ground_truth for p in bench.problems]
    if bench.grader == "choice":
        rows, canonical, allowed = range(len(truths)), normalize_choice, 0.0
    else:
        stride = -(-len(truths) // MATH_SUBSET)
        rows, canonical, allowed = range(0, len(truths), stride), normalize_answer, MATH_WRONG_MAX
    answers = [other_truth(truths, i, canonical) for i in rows]
    grades = grader.grade([response(a) for a in answers], [truths[i] for i in rows], bench.grader)
    correct = [(truths[i], a) for i, a, g in zip(rows, answers, grades) if g.correct]
    assert len(correct) / len(grades) <= allowed, f"wrongly accepted: {correct}"


@pytest.mark.parametrize("file_name", [f for f in FILES if load(f).grader == "math"])
def test_every_gold_parses_after_normalisation(file_name):
    """math-verify reads every math gold as an expression (a number, set, interval, ...), not just
    a string: Python/numpy forms, e-notation, percent signs and symbol left-hand sides included."""
    import sympy
    from math_verify import parse

    unparsed = []
    for problem in load(file_name).problems:
        parsed = parse("\\boxed{" + problem.ground_truth + "}", parsing_timeout=None)
        if not any(isinstance(x, (sympy.Basic, sympy.MatrixBase, set, tuple)) for x in parsed):
            unparsed.append(problem.ground_truth)
    assert not unparsed, unparsed


def test_minerva_e_notation_golds_accept_latex_scientific_answers(grader: Grader):
    """Every e-notation gold of Minerva (58) is matched by the answer written as a LaTeX power of
    ten, with one more trailing zero (``4.5e33`` <- ``4.50\\times10^{33}``)."""
    import re

    import pyarrow.parquet as pq

    rows = pq.read_table(SHARED_BENCHMARKS / "minerva.parquet").to_pylist()
    raw = [str(r["reward_model"]["ground_truth"]) for r in rows]
    golds = [g for g in raw if re.fullmatch(r"-?\d+(?:\.\d+)?e-?\d+", g)]
    assert len(golds) == 58

    def latex(g: str) -> str:
        mantissa, exponent = g.split("e")
        mantissa = mantissa + ("0" if "." in mantissa else ".0")
        return f"{mantissa}\\times10^{{{int(exponent)}}}"

    grades = grader.grade([response(latex(g)) for g in golds], golds, "math")
    assert all(g.correct for g in grades), [g for g, x in zip(golds, grades) if not x.correct]
