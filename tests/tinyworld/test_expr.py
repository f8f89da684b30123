"""Expression text form: brackets exactly where the tree needs them, and a parser that inverts it."""

from __future__ import annotations

import random

import pytest

from curio.tinyworld.expr import BinOp, Num, evaluate, iter_nodes, parse, render
from curio.tinyworld.problems import checked_value, sample_problem
from curio.tinyworld.settings import ID, OOD


@pytest.mark.parametrize(
    ("tree", "text"),
    [
        (BinOp("+", Num(7), BinOp("+", Num(3), Num(4))), "7+(3+4)"),
        (BinOp("+", BinOp("+", Num(7), Num(3)), Num(4)), "7+3+4"),
        (BinOp("-", Num(9), BinOp("-", Num(5), Num(2))), "9-(5-2)"),
        (BinOp("*", BinOp("+", Num(1), Num(2)), Num(3)), "(1+2)*3"),
        (BinOp("+", Num(1), BinOp("*", Num(2), Num(3))), "1+2*3"),
        (BinOp("*", Num(2), BinOp("*", Num(3), Num(4))), "2*(3*4)"),
    ],
)
def test_render_and_parse_are_inverse(tree, text):
    assert render(tree) == text
    assert parse(text) == tree


def test_pre_order_is_text_order():
    paths = [render(node) for _, node in iter_nodes(parse("3*(4+5)-2*6"))]
    assert paths == ["3*(4+5)-2*6", "3*(4+5)", "3", "4+5", "4", "5", "2*6", "2", "6"]


@pytest.mark.parametrize("setting", [ID, OOD])
def test_sampled_problems_respect_setting(setting):
    rng = random.Random(1)
    for _ in range(200):
        problem = sample_problem(rng, setting)
        assert parse(render(problem)) == problem
        assert checked_value(problem, setting.limits) == evaluate(problem)
        n_ops = render(problem).count("+") + render(problem).count("-") + render(problem).count("*")
        assert setting.min_ops <= n_ops <= setting.max_ops
