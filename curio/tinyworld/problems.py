"""Random problems: expression trees whose every evaluation path stays within the world's limits."""

from __future__ import annotations

import random

from curio.tinyworld.expr import OPS, BinOp, Expr, Num, apply_op
from curio.tinyworld.settings import Limits, Setting
from curio.tinyworld.steps import candidate_steps


def checked_value(expr: Expr, limits: Limits) -> int | None:
    """The value of ``expr``, or None if some node leaves the limits.

    Node values do not depend on the order in which operations are evaluated, so a tree that passes
    here can be reduced in any order without ever producing an out-of-range number.
    """
    if isinstance(expr, Num):
        return expr.value if 0 <= expr.value <= limits.max_value else None
    left, right = checked_value(expr.left, limits), checked_value(expr.right, limits)
    if left is None or right is None or not limits.allows(expr.op, left, right):
        return None
    return apply_op(expr.op, left, right)


def _random_tree(rng: random.Random, n_ops: int, setting: Setting) -> tuple[Expr, int]:
    """A random tree with ``n_ops`` operations, valid in the limits, and its value.

    Children are drawn first and the operator is then drawn among those the limits allow for their
    values (weighted by ``setting.op_weights``), so no subtree is ever thrown away for an out-of-range
    product; only in the rare case where no operator fits are the children redrawn.
    """
    if n_ops == 0:
        value = rng.randint(setting.min_leaf, setting.max_leaf)
        return Num(value), value
    while True:
        n_left = rng.randint(0, n_ops - 1)
        left, left_value = _random_tree(rng, n_left, setting)
        right, right_value = _random_tree(rng, n_ops - 1 - n_left, setting)
        allowed = [
            (op, weight)
            for op, weight in zip(OPS, setting.op_weights)
            if setting.limits.allows(op, left_value, right_value)
        ]
        if allowed:
            op = rng.choices([op for op, _ in allowed], weights=[weight for _, weight in allowed])[0]
            return BinOp(op, left, right), apply_op(op, left_value, right_value)


def sample_problem(rng: random.Random, setting: Setting) -> Expr:
    """Draw one problem from ``setting``: valid in every evaluation order, with a choice at step one.

    The operation count is drawn once, before the choice filter, so it stays uniform even though longer
    problems pass the filter more often.
    """
    n_ops = rng.randint(setting.min_ops, setting.max_ops)
    while True:
        problem, _ = _random_tree(rng, n_ops, setting)
        if len(candidate_steps(problem, setting.limits)) >= setting.min_first_options:
            return problem
