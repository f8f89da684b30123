"""Answer extraction, answer checking and step verification."""

from __future__ import annotations

import pytest

from curio.tinyworld.grading import extract_boxed, is_correct
from curio.tinyworld.verify import verify_solution

GOOD = "4*2=8, so (7+5)*3-8\n7+5=12, so 12*3-8\n12*3=36, so 36-8\n36-8=28\n\\boxed{28}"


def test_extract_boxed():
    assert extract_boxed("x \\boxed{3} then \\boxed{28}") == "28"
    assert extract_boxed("\\boxed{\\frac{1}{2}}") == "\\frac{1}{2}"
    assert extract_boxed("no answer") is None
    assert extract_boxed("\\boxed{12") is None


@pytest.mark.parametrize(("text", "answer", "expected"), [
    (GOOD, "28", True),
    (GOOD, 28, True),
    ("\\boxed{ 028 }", "28", True),
    ("\\boxed{28.}", "28", True),
    (GOOD, "27", False),
    ("28", "28", False),
])
def test_is_correct(text, answer, expected):
    assert is_correct(text, answer) is expected


def test_verify_accepts_a_sound_solution():
    assert verify_solution("(7+5)*3-4*2", GOOD) == []


def test_verify_finds_one_slip_and_follows_it():
    slipped = "4*2=8, so (7+5)*3-8\n7+5=13, so 13*3-8\n13*3=39, so 39-8\n39-8=31\n\\boxed{31}"
    assert verify_solution("(7+5)*3-4*2", slipped) == ["line 2: 7+5=13 but it is 12"]


@pytest.mark.parametrize(("response", "error"), [
    ("4*2=8, so (7+5)*3-9\n\\boxed{28}", "is not (7+5)*3-4*2 with 4*2 replaced"),
    ("3*8=24, so 24\n\\boxed{24}", "3*8 is not part of"),
    ("(7+5)*3-4*2=28\n\\boxed{28}", "neither a ready operation nor distributable"),
    ("(7+5)*3=7*3+5*3, so 7*3+5*3-4*2\n\\boxed{28}", "is unfinished"),
    ("(7+5)*3=7*3+3*5, so 7*3+3*5-4*2\n\\boxed{28}", "distributes to 7*3+5*3"),
    (GOOD.replace("\\boxed{28}", "\\boxed{29}"), "boxed 29 but the last step reached 28"),
    (GOOD.replace("36-8=28", "36-8 gives 28"), "cannot read"),
])
def test_verify_reports_bad_steps(response, error):
    errors = verify_solution("(7+5)*3-4*2", response)
    assert any(error in found for found in errors), errors
