"""The two problem distributions of the tiny world (in-distribution and out-of-distribution).

Both share the same arithmetic facts (every operand and intermediate value within :class:`Limits`), so
a model that learned the facts on ID problems can in principle solve OOD ones; OOD only asks for longer
compositions: more operations, hence more steps, deeper bracket nesting and more choice points.
"""

from __future__ import annotations

from dataclasses import dataclass

from curio.tinyworld.expr import apply_op


@dataclass(frozen=True)
class Limits:
    """Bounds every problem, and every alternative solution path, respects.

    Attributes:
        max_value: every intermediate value lies in ``[0, max_value]``. Small on purpose: the world
            holds well under a thousand distinct facts, so a few-million-parameter model sees each one
            dozens of times in a single pretraining epoch (with values up to 99 it stays near 0% after
            one epoch).
        max_factor: both operands of a multiplication are at most this (the one-digit times tables).
    """

    max_value: int = 30
    max_factor: int = 9

    def allows(self, op: str, left: int, right: int) -> bool:
        """Whether ``left op right`` is a fact the world uses (times tables, result in range)."""
        if op == "*" and max(left, right) > self.max_factor:
            return False
        return 0 <= apply_op(op, left, right) <= self.max_value


@dataclass(frozen=True)
class Setting:
    """A problem distribution.

    Attributes:
        name: ``"id"`` or ``"ood"``.
        min_ops, max_ops: inclusive range of the number of operations (uniform over it).
        min_leaf, max_leaf: numbers written in the problem are drawn uniformly from this range.
        op_weights: relative weight of ``+``, ``-``, ``*`` among the operators the limits allow at a
            node (products are allowed least often, so they weigh more, ending up near a quarter).
        min_first_options: problems offering fewer valid first steps are redrawn. Without it most short
            problems are plain left-to-right chains with no choice at all.
        limits: value bounds shared by problems and solution paths.
    """

    name: str
    min_ops: int
    max_ops: int
    min_leaf: int = 1
    max_leaf: int = 9
    op_weights: tuple[float, float, float] = (1.0, 1.0, 3.0)
    min_first_options: int = 2
    limits: Limits = Limits()


ID = Setting(name="id", min_ops=3, max_ops=4)
OOD = Setting(name="ood", min_ops=5, max_ops=7)
