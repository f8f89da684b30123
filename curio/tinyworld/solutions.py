"""Step-by-step solutions, written by a policy that picks among the valid steps, with char labels.

A solution is one line per step (see :mod:`curio.tinyworld.steps`) followed by ``\\boxed{answer}``:

    4*2=8, so (7+2)*3-8
    7+2=9, so 9*3-8
    9*3=27, so 27-8
    27-8=19
    \\boxed{19}

Two policies exist: ``uniform`` (every valid step and every wording equally likely: the diverse
pretraining corpus) and ``leftmost`` (always evaluate the leftmost ready operation, never distribute,
always the first wording: the single consistent style of the expert demonstrations). A flaw makes one
step wrong and the solution carries on correctly from it, ending in a wrong boxed answer: a
:class:`Slip` turns one result into a wrong number, a :class:`Misread` evaluates two numbers that only
look like an operation (a precedence slip, taken at a fork).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from curio.tinyworld.expr import BinOp, Expr, Num, count_ops, evaluate
from curio.tinyworld.labels import Span, positions_to_spans
from curio.tinyworld.phrasing import Phrasing, pick_wording, write_line
from curio.tinyworld.problems import checked_value
from curio.tinyworld.settings import Limits
from curio.tinyworld.steps import Step, candidate_steps, misread_steps, reduce_at

StepPicker = Callable[[Sequence[Step], random.Random], Step]

# Typical human slips: off by one or two, or a wrong carry/borrow (off by ten).
SLIP_DELTAS: tuple[int, ...] = (-10, -2, -1, 1, 2, 10)
_FLAW_ATTEMPTS = 20


def uniform_step(options: Sequence[Step], rng: random.Random) -> Step:
    """Any valid step, uniformly: order of independent operations and strategy both vary."""
    return rng.choice(list(options))


def leftmost_step(options: Sequence[Step], rng: random.Random) -> Step:
    """The leftmost ready operation, never distributing: one fixed, deterministic style."""
    del rng  # deterministic by design; the signature is shared with the other pickers
    return next(step for step in options if step.kind == "reduce")


@dataclass(frozen=True)
class Policy:
    """A writer: how it picks the next step, and whether it varies its wording (else the first)."""

    step: StepPicker
    diverse_wording: bool


POLICIES: dict[str, Policy] = {
    "uniform": Policy(uniform_step, diverse_wording=True),
    "leftmost": Policy(leftmost_step, diverse_wording=False),
}


@dataclass(frozen=True)
class Slip:
    """An arithmetic mistake: the ``step``-th reduction (0-based) reports ``true result + delta``."""

    step: int
    delta: int


@dataclass(frozen=True)
class Misread:
    """A precedence slip: line ``line`` (0-based) evaluates a misread operation (see :func:`misread_steps`)."""

    line: int


Flaw = Slip | Misread


@dataclass(frozen=True)
class Solution:
    """A written solution and its character labels.

    Attributes:
        text: the response, ending in ``\\boxed{...}`` with no trailing newline.
        choice_spans: ``[start, end)`` spans of CHOICE characters (see :mod:`curio.tinyworld.labels`).
        result_spans: ``[start, end)`` spans of RESULT characters.
        phrase_spans: ``[start, end)`` spans of PHRASE characters (empty where the world has one wording).
        boxed: the answer the solution writes (differs from the true value iff ``flawed``).
        flawed: whether the solution contains a flaw.
    """

    text: str
    choice_spans: list[Span]
    result_spans: list[Span]
    phrase_spans: list[Span]
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
    phrasing: Phrasing = Phrasing(),
    flaw: Flaw | None = None,
) -> Solution | None:
    """Solve ``problem`` step by step with ``policy``; None if ``flaw`` cannot happen within the limits.

    Step branching is computed on ``HEAD=`` only: HEADs are distinct and contain no ``=``, so the choice
    is always settled where the head ends, and a slipped result cannot create or hide a choice. Wording
    forks are labelled wherever the world offers several wordings, whichever the writer takes.
    """
    expr: Expr = problem
    text = ""
    choice: list[int] = []
    result: list[int] = []
    phrase: list[int] = []
    n_reduced = 0
    while isinstance(expr, BinOp):
        options = candidate_steps(expr, limits)
        if isinstance(flaw, Misread) and flaw.line == text.count("\n"):
            misreads = [step for step in misread_steps(expr, limits) if checked_value(step.after, limits) is not None]
            if not misreads:
                return None
            step = rng.choice(misreads)
        else:
            step = policy.step(options, rng)
        if step.kind == "reduce":
            if isinstance(flaw, Slip) and n_reduced == flaw.step:
                step = reduce_at(expr, step.path, int(step.rhs) + flaw.delta)
                if checked_value(step.after, limits) is None:
                    return None
            n_reduced += 1
        wording = pick_wording(phrasing, rng, policy.diverse_wording)
        head_start = len(text) + len(wording.connector)
        rhs_start = head_start + len(step.head) + len(wording.equals)
        if step.kind != "distribute":
            result.extend(range(rhs_start, rhs_start + len(step.rhs)))
        heads = [option.head + "=" for option in options]
        choice.extend(head_start + i for i in branching_positions(step.head + "=", heads))
        phrase.extend(len(text) + i for i in branching_positions(wording.connector, phrasing.connectors))
        phrase.extend(head_start + len(step.head) + i for i in branching_positions(wording.equals, phrasing.equals))
        if isinstance(step.after, BinOp):
            sep_start = rhs_start + len(step.rhs)
            phrase.extend(sep_start + i for i in branching_positions(wording.separator, phrasing.separators))
        line = write_line(step, wording)
        end_start = len(text) + len(line) - len(wording.end)
        phrase.extend(end_start + i for i in branching_positions(wording.end, phrasing.ends))
        text += line
        expr = step.after
    assert isinstance(expr, Num)
    text += f"\\boxed{{{expr.value}}}"
    return Solution(
        text,
        positions_to_spans(choice),
        positions_to_spans(result),
        positions_to_spans(sorted(set(phrase) - set(choice))),
        expr.value,
        flaw is not None,
    )


def write_flawed_solution(
    problem: Expr,
    policy: Policy,
    rng: random.Random,
    limits: Limits,
    phrasing: Phrasing = Phrasing(),
    kind: str = "slip",
) -> Solution | None:
    """A solution with one flaw of ``kind`` (``slip`` or ``misread``) that changes the boxed answer.

    None if no such flaw is found in a few draws.
    """
    truth = evaluate(problem)
    for _ in range(_FLAW_ATTEMPTS):
        if kind == "slip":
            flaw: Flaw = Slip(step=rng.randrange(count_ops(problem)), delta=rng.choice(SLIP_DELTAS))
        else:
            flaw = Misread(line=rng.randrange(count_ops(problem) - 1))
        solution = write_solution(problem, policy, rng, limits, phrasing, flaw)
        if solution is not None and solution.boxed != truth:
            return solution
    return None
