"""Grading: equivalent and non-equivalent answers, multiple choice, the </think> rule, and failures
(exceptions, soft and hard timeouts) that must be counted as wrong rather than raised."""

from __future__ import annotations

import signal
import time

import pytest

import curio.evaluation.grading as grading
from curio.evaluation import Grade, Grader, grade_choice
from curio.evaluation.answers import normalize_gold

EQUIVALENT = [
    ("\\frac{1}{2}", "\\boxed{0.5}"),
    ("0.5", "\\boxed{\\frac12}"),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "\\boxed{(3, \\pi/2)}"),
    ("(3, \\frac{\\pi}{2})", "\\boxed{\\left(3,\\dfrac{\\pi}{2}\\right)}"),
    ("[1,2)", "\\boxed{[1, 2)}"),
    ("(-\\infty, 0) \\cup (1, \\infty)", "\\boxed{(-\\infty,0)\\cup(1,\\infty)}"),
    ("\\{1,2\\}", "\\boxed{\\{2, 1\\}}"),
    ("1,3,5", "\\boxed{5, 3, 1}"),
    ("5", "\\boxed{5\\text{ cm}}"),
    ("12", "\\boxed{12 \\text{ square units}}"),
    ("\\text{Evelyn}", "\\boxed{Evelyn}"),
    ("90^\\circ", "\\boxed{90}"),
    ("30", "\\boxed{30^{\\circ}}"),
    ("025", "\\boxed{25}"),
    ("142.0", "\\boxed{142}"),
    ("x=5", "\\boxed{5}"),
    ("4.5e33", "\\boxed{4.5 \\times 10^{33}}"),
    ("50\\%", "\\boxed{50}"),
    ("\\frac{14}{3}", "\\boxed{\\dfrac{14}{3}}"),
    ("2\\sqrt{2}", "\\boxed{\\sqrt{8}}"),
    ("x^2+2x+1", "\\boxed{(x+1)^2}"),
    ("\\frac{1}{2}", "so the final answer is $\\frac{1}{2}$."),
]

NOT_EQUIVALENT = [
    ("\\frac{1}{2}", "\\boxed{0.51}"),
    ("204", "\\boxed{205}"),
    ("[1,2)", "\\boxed{[1,2]}"),
    ("\\{1,2\\}", "\\boxed{\\{1,3\\}}"),
    ("(3, \\frac{\\pi}{2})", "\\boxed{(\\frac{\\pi}{2}, 3)}"),
    ("x^2", "\\boxed{x^3}"),
    ("\\sqrt{2}", "\\boxed{2}"),
    ("-5", "\\boxed{5}"),
    ("5", "\\boxed{5 + x}"),
    ("5", "no answer at all"),
    ("5", "cut off mid-answer \\boxed{5"),
]


def test_equivalent_answers_are_correct(grader: Grader):
    truths, responses = zip(*EQUIVALENT)
    grades = grader.grade(responses, truths, "math")
    failed = [(t, r, g) for t, r, g in zip(truths, responses, grades) if not g.correct]
    assert not failed


def test_non_equivalent_answers_are_wrong(grader: Grader):
    truths, responses = zip(*NOT_EQUIVALENT)
    grades = grader.grade(responses, truths, "math")
    wrong = [(t, r, g) for t, r, g in zip(truths, responses, grades) if g.correct]
    assert not wrong
    assert all(g.error is None and not g.timed_out for g in grades)


def test_extracted_answers_are_normalised_for_voting(grader: Grader):
    grades = grader.grade(
        ["\\boxed{\\dfrac{1}{2}}", "\\boxed{\\frac12}", "\\boxed{7}", "nothing"],
        ["1/2", "3", "7", "7"],
        "math",
    )
    assert [g.extracted for g in grades] == ["\\frac{1}{2}", "\\frac{1}{2}", "7", None]


def test_require_think_close(grader: Grader):
    responses = [
        "<think>so 5</think> The answer is \\boxed{5}.",
        "<think>so 5 ... \\boxed{5}",  # never closed its reasoning
        "<think>\\boxed{5}</think> on reflection \\boxed{6}",  # only the part after </think> counts
    ]
    strict = grader.grade(responses, ["5"] * 3, "math", require_think_close=True)
    assert [g.correct for g in strict] == [True, False, False]
    assert strict[1] == Grade(correct=False, extracted=None)
    lenient = grader.grade(responses, ["5"] * 3, "math")
    assert [g.correct for g in lenient] == [True, True, False]


def test_boxed_grader_takes_no_unboxed_answer(grader: Grader):
    """The fork world's case (protocol amendment A11): every intermediate expression of a solution
    equals the answer, so the ``math`` grader, which lets math-verify judge the last expression of
    an unboxed response, pays a response that stopped after one step; ``boxed`` does not, and
    otherwise grades as ``math`` (equivalent boxed answers, think-close rule)."""
    stopped = "Then 9-7=2, so 2*(3*(7-5))\nThen 7-5=2, so 2*(3*2)\n\x07#q"
    responses = [stopped, "so 2*6\n\\boxed{12}", "\\boxed{\\frac{24}{2}}", "\\boxed{13}", "<think>x\\boxed{12}"]
    assert [g.correct for g in grader.grade(responses, ["12"] * 5, "math")] == [True, True, True, False, True]
    boxed = grader.grade(responses, ["12"] * 5, "boxed")
    assert [g.correct for g in boxed] == [False, True, True, False, True]
    assert boxed[0] == Grade(correct=False, extracted=None)
    assert [g.correct for g in grader.grade(responses, ["12"] * 5, "boxed", require_think_close=True)] == [
        False, False, False, False, False]


@pytest.mark.parametrize(
    "response, truth, correct",
    [
        ("\\boxed{C}", "C", True),
        ("\\boxed{(C)}", "C", True),
        ("The answer is (C).", "C", True),
        ("ANSWER: C", "C", True),
        ("answer is C", "(C)", True),
        ("\\boxed{2}", "2", True),
        ("\\boxed{B}", "C", False),
        ("The answer is (A).", "C", False),
        ("I don't know", "C", False),
    ],
)
def test_multiple_choice(grader: Grader, response, truth, correct):
    assert grader.grade([response], [truth], "choice")[0].correct is correct
    assert grade_choice(response, truth).correct is correct


def test_choice_respects_think_close():
    assert not grade_choice("<think>\\boxed{C}", "C", require_think_close=True).correct
    assert grade_choice("<think>hmm</think>\\boxed{C}", "C", require_think_close=True).correct


def test_bad_arguments_raise(grader: Grader):
    with pytest.raises(ValueError, match="ground truths"):
        grader.grade(["a"], [], "math")
    with pytest.raises(ValueError, match="grader kind"):
        grader.grade(["a"], ["a"], "essay")  # type: ignore[arg-type]


# The pathological cases below need answers that skip the in-process shortcuts (string match,
# two integers), so they reach the math-verify workers.
NEEDS_VERIFIER = ("1/2", "\\boxed{0.5}")


def raising_verify(*args, **kwargs):
    raise RuntimeError("verifier exploded")


def slow_verify(*args, **kwargs):
    time.sleep(60)  # interruptible: the worker's soft limit stops it


def stuck_verify(gold, pred, **kwargs):
    if "0.25" in str(pred):
        # Simulates SymPy stuck in C code: the soft-limit signal is never acted on.
        signal.signal(signal.SIGALRM, signal.SIG_IGN)
        time.sleep(60)
    return ORIGINAL_VERIFY(gold, pred, **kwargs)


ORIGINAL_VERIFY = grading.verify


@pytest.mark.parametrize(
    "verify, timeout_s, expect",
    [
        # The limit also covers parsing the answers, whose first call in a fresh worker took over
        # 0.5 s on a loaded machine: a verifier that raises gets room to reach its raise.
        (raising_verify, 4.0, {"error": "RuntimeError: verifier exploded"}),
        (slow_verify, 0.5, {"timed_out": True}),
    ],
)
def test_verifier_failures_are_counted_not_raised(monkeypatch, verify, timeout_s, expect):
    # Forked workers inherit the monkeypatched module.
    monkeypatch.setattr(grading, "verify", verify)
    truth, response = NEEDS_VERIFIER
    with Grader(num_workers=1, timeout_s=timeout_s, grace_s=5.0, start_method="fork") as fork_grader:
        started = time.monotonic()
        grades = fork_grader.grade([response, "\\boxed{1/2}"], [truth, truth], "math")
        assert time.monotonic() - started < 5
    assert grades[0].correct is False
    assert grades[0] == Grade(correct=False, extracted="0.5", **expect)
    assert grades[1].correct  # decided in-process by string match, never reaches the verifier


def test_worker_stuck_in_c_code_is_killed_and_the_batch_goes_on(monkeypatch):
    monkeypatch.setattr(grading, "verify", stuck_verify)
    truths = ["1/4", "1/2", "1/3"]
    responses = ["\\boxed{0.25}", "\\boxed{0.5}", "\\boxed{2/6}"]
    # The stuck answer costs timeout_s + grace_s; the limit is generous because the replacement
    # worker's first SymPy call is slow on a loaded machine, and must not time out itself.
    with Grader(num_workers=1, timeout_s=5, grace_s=0.5, start_method="fork") as fork_grader:
        grades = fork_grader.grade(responses, truths, "math")
    assert grades[0] == Grade(correct=False, extracted="0.25", timed_out=True)
    assert grades[1].correct and grades[2].correct  # graded by the replacement worker


def test_pathological_answer_cannot_hang_the_grader(grader: Grader):
    # SymPy evaluates this power tower as an integer with ~10^10 digits, inside C code.
    started = time.monotonic()
    grades = grader.grade(
        ["\\boxed{10^{10^{10^{10}}}}", "\\boxed{0.5}"], ["5", "\\frac{1}{2}"], "math"
    )
    assert time.monotonic() - started < 15
    assert not grades[0].correct and (grades[0].timed_out or grades[0].error)
    assert grades[1].correct


@pytest.mark.parametrize(("gold", "answer"), [
    ("4.5e33", "4.50\\times10^{33}"),
    ("1e-5", "10^{-5}"),
    ("6.5e-2", "0.065"),
    ("np.arcsin(10/13)", "\\arcsin(10/13)"),
    ("-1./3", "-\\frac{1}{3}"),
    ("-3./2", "-1.5"),
    ("62.5%", "62.5\\%"),
    ("$8 \\%$", "8"),
    ("$m_{\\max }=n^{2}-n-1$", "n^2-n-1"),
    ("$t(0,4]$", "(0,4]"),
    ("E_{1},E_{2}", "E_1, E_2"),
    ("\\frac{dM}{dt}=\\frac{10^{5} L_{\\odot}}{0.007 c^{2} M_{\\odot}^{6}} M^{6}",
     "\\frac{10^5 L_\\odot M^6}{0.007 c^2 M_\\odot^6}"),
])
def test_golds_in_python_numpy_or_e_notation_accept_latex_answers(grader, gold, answer):
    normalized = normalize_gold(gold)
    assert normalize_gold(normalized) == normalized  # idempotent: normalising twice changes nothing
    (grade,) = grader.grade([f"\\boxed{{{answer}}}"], [gold], "math")
    assert grade.correct, (gold, normalized, answer, grade)
    (wrong,) = grader.grade(["\\boxed{7}"], [gold], "math")
    assert not wrong.correct
