"""Step-by-step checking of a written solution, independent of how it was generated.

Used by the tests to prove every generated solution is sound (and every flawed one has exactly one
wrong step), and usable on model samples to tell arithmetic slips from wrong rewrites.
"""

from __future__ import annotations

import re

from curio.tinyworld.expr import Expr, Num, evaluate, is_ready, iter_nodes, parse, render, replace
from curio.tinyworld.phrasing import Phrasing
from curio.tinyworld.steps import distributed

_BOXED_LINE = re.compile(r"\\boxed\{(?P<value>\d+)\}")


def _parse_or_none(text: str) -> Expr | None:
    try:
        return parse(text)
    except ValueError:
        return None


def _rewrite(head: Expr, rhs: str) -> tuple[Expr | None, str | None]:
    """What ``head`` becomes according to the line, or an error message if ``HEAD=RHS`` is wrong."""
    if is_ready(head):
        if not rhs.isdigit():
            return None, f"{render(head)} is evaluated to {rhs!r}, not a number"
        if int(rhs) != evaluate(head):
            return Num(int(rhs)), f"{render(head)}={rhs} but it is {evaluate(head)}"
        return Num(int(rhs)), None
    expected = distributed(head, limits=None)
    if expected is None:
        return None, f"{render(head)} is neither a ready operation nor distributable"
    if rhs != render(expected):
        return None, f"{render(head)} distributes to {render(expected)}, not {rhs}"
    return expected, None


def _any_of(options: tuple[str, ...]) -> str:
    return "(?:" + "|".join(re.escape(option) for option in options) + ")"


def line_pattern(phrasing: Phrasing) -> re.Pattern[str]:
    """A step line in any of the world's wordings: groups ``head``, ``rhs`` and (not on the last step) ``after``."""
    ends = tuple(end.removesuffix("\n") for end in phrasing.ends)  # the response is split at newlines
    return re.compile(
        rf"{_any_of(phrasing.connectors)}(?P<head>[^=\s]+){_any_of(phrasing.equals)}(?P<rhs>[^,.\s]+)"
        rf"(?:{_any_of(phrasing.separators)}(?P<after>[^.\s]+))?{_any_of(ends)}"
    )


def verify_solution(problem: str, response: str, phrasing: Phrasing = Phrasing()) -> list[str]:
    """Every error found in ``response`` as a solution of ``problem``; an empty list means it is sound.

    Checked per line: the HEAD is a sub-expression of the current expression, ``HEAD=RHS`` is true
    (arithmetic for a reduction, the distributive law for a rewrite), and AFTER is the current
    expression with that sub-expression replaced by RHS. After a wrong RHS, checking continues from
    what was written, so a single slip yields a single error. Last, the boxed answer must equal what
    the final line reached. Lines may take any wording of ``phrasing`` (the world's).
    """
    line_re = line_pattern(phrasing)
    errors: list[str] = []
    expr = parse(problem)
    *step_lines, last = response.split("\n")
    for number, line in enumerate(step_lines, start=1):
        match = line_re.fullmatch(line)
        head = _parse_or_none(match["head"]) if match else None
        if match is None or head is None:
            return errors + [f"line {number}: cannot read {line!r}"]
        paths = [path for path, node in iter_nodes(expr) if node == head]
        if not paths:
            return errors + [f"line {number}: {match['head']} is not part of {render(expr)}"]
        new_node, error = _rewrite(head, match["rhs"])
        if new_node is None:
            return errors + [f"line {number}: {error}"]
        if error is not None:
            errors.append(f"line {number}: {error}")
        if match["after"] is None:
            if () not in paths or not isinstance(new_node, Num):
                return errors + [f"line {number}: {render(expr)} is not finished after this step"]
            expr = new_node
            continue
        after = _parse_or_none(match["after"])
        if after is None:
            return errors + [f"line {number}: cannot read {match['after']!r}"]
        if after not in [replace(expr, path, new_node) for path in paths]:
            errors.append(f"line {number}: {match['after']} is not {render(expr)} with {match['head']} replaced")
        expr = after
    boxed = _BOXED_LINE.fullmatch(last)
    if boxed is None:
        return errors + [f"last line {last!r} is not \\boxed{{integer}}"]
    if not isinstance(expr, Num):
        return errors + [f"boxed an answer while {render(expr)} is unfinished"]
    if int(boxed["value"]) != expr.value:
        errors.append(f"boxed {boxed['value']} but the last step reached {expr.value}")
    return errors
