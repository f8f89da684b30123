"""Step-by-step solutions, written by a policy that picks among the valid steps, with char labels.

A solution is one line per step (see :mod:`curio.tinyworld.steps`) followed by ``\\boxed{answer}``:

    4*2=8, so (7+2)*3-8
    7+2=9, so 9*3-8
    9*3=27, so 27-8
    27-8=19
    \\boxed{19}

Two policies exist: ``uniform`` (every valid step equally likely: the diverse pretraining corpus) and
``leftmost`` (always evaluate the leftmost ready operation, never distribute: the single consistent
style of the expert demonstrations). A :class:`Slip` turns one result into a wrong number and the
solution carries on correctly from the wrong value, ending in a wrong boxed answer.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from curio.tinyworld.expr import BinOp, Expr, Num, count_ops, evaluate
from curio.tinyworld.labels import Span, positions_to_spans
from curio.tinyworld.problems import checked_value
from curio.tinyworld.settings import Limits
from curio.tinyworld.steps import Step, candidate_steps, reduce_at

Policy = Callable[[Sequence[Step], random.Random], Step]

# Typical human slips: off by one or two, or a wrong carry/borrow (off by ten).
SLIP_DELTAS: tuple[int, ...] = (-10, -2, -1, 1, 2, 10)
_FLAW_ATTEMPTS = 20


def uniform_policy(options: Sequence[Step], rng: random.Random) -> Step:
    """Any valid step, uniformly: order of independent operations and strategy both vary."""
    return rng.choice(list(options))


def leftmost_policy(options: Sequence[Step], rng: random.Random) -> Step:
    """The leftmost ready operation, never distributing: one fixed, deterministic style."""
    del rng  # deterministic by design; the signature is shared with the other policies
    return next(step for step in options if step.kind == "reduce")


POLICIES: dict[str, Policy] = {"uniform": uniform_policy, "leftmost": leftmost_policy}


@dataclass(frozen=True)
class Slip:
    """An arithmetic mistake: the ``step``-th reduction (0-based) reports ``true result + delta``."""

    step: int
    delta: int


@dataclass(frozen=True)
class Solution:
    """A written solution and its character labels.

    Attributes:
        text: the response, ending in ``\\boxed{...}`` with no trailing newline.
        choice_spans: ``[start, end)`` spans of CHOICE characters (see :mod:`curio.tinyworld.labels`).
        result_spans: ``[start, end)`` spans of RESULT characters.
        boxed: the answer the solution writes (differs from the true value iff ``flawed``).
        flawed: whether the solution contains a slip.
    """

    text: str
    choice_spans: list[Span]
    result_spans: list[Span]
    boxed: int
    flawed: bool


def branching_positions(chosen: str, alternatives: Sequence[str]) -> list[int]:
    """Positions in ``chosen`` where the alternatives still consistent with it disagree on the next char."""
    positions = []
    live = list(alternatives)
    for i, char in enumerate(chosen):
        if len({alt[i] for alt in live if i < len(alt)}) > 1:
            positions.append(i)
        live = [alt for alt in live if i < len(alt) and alt[i] == char]
    return positions


def write_solution(
    problem: Expr,
    policy: Policy,
    rng: random.Random,
    limits: Limits,
    slip: Slip | None = None,
) -> Solution | None:
    """Solve ``problem`` step by step with ``policy``; None if ``slip`` would leave the world's limits.

    Branching is computed on ``HEAD=`` only: HEADs are distinct and contain no ``=``, so the choice is
    always settled by the ``=``, and a slipped result cannot create or hide a choice.
    """
    expr: Expr = problem
    text = ""
    choice: list[int] = []
    result: list[int] = []
    n_reduced = 0
    while isinstance(expr, BinOp):
        options = candidate_steps(expr, limits)
        step = policy(options, rng)
        if step.kind == "reduce":
            if slip is not None and n_reduced == slip.step:
                step = reduce_at(expr, step.path, int(step.rhs) + slip.delta)
                if checked_value(step.after, limits) is None:
                    return None
            n_reduced += 1
            rhs_start = len(text) + len(step.head) + 1
            result.extend(range(rhs_start, rhs_start + len(step.rhs)))
        heads = [option.head + "=" for option in options]
        choice.extend(len(text) + i for i in branching_positions(step.head + "=", heads))
        text += step.line
        expr = step.after
    assert isinstance(expr, Num)
    text += f"\\boxed{{{expr.value}}}"
    return Solution(text, positions_to_spans(choice), positions_to_spans(result), expr.value, slip is not None)


def write_flawed_solution(
    problem: Expr, policy: Policy, rng: random.Random, limits: Limits
) -> Solution | None:
    """A solution with one slip that changes the boxed answer; None if no such slip is found."""
    truth = evaluate(problem)
    for _ in range(_FLAW_ATTEMPTS):
        slip = Slip(step=rng.randrange(count_ops(problem)), delta=rng.choice(SLIP_DELTAS))
        solution = write_solution(problem, policy, rng, limits, slip)
        if solution is not None and solution.boxed != truth:
            return solution
    return None
