"""Solution steps: the valid moves from an expression, and the text line each move is written as.

Two kinds of move exist:

- ``reduce``: evaluate one ready operation ``x op y`` (both operands numbers). Every ready operation in
  the tree is a valid move, so independent sub-expressions can be evaluated in any order.
- ``distribute``: rewrite ``a*(b±c)`` as ``a*b±a*c`` (or ``(b±c)*a`` as ``b*a±c*a``) instead of first
  evaluating the bracket: a second *strategy*. Only offered for a factor of at least 2 whose new
  products stay in the limits.

A step is written as one line ``HEAD=RHS, so AFTER`` (``HEAD=RHS`` alone when AFTER is a number), e.g.
``7+2=9, so 9*3-8`` or ``3*(4+5)=3*4+3*5, so 3*4+3*5-2`` (other worlds word it otherwise:
:mod:`curio.tinyworld.phrasing`). The HEAD names the move, so the choice of move is made in the first
characters of HEAD and everything after it is determined by it.

A third kind exists only as a mistake: ``misread``, the precedence slip of evaluating two numbers that
stand next to each other in the text but are not an operation of the tree (``2+4=6`` in ``2+4*3``).
It is never a valid step; flawed pretraining rows take one, so the base model learns that a fork can
also lead somewhere wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from curio.tinyworld.expr import (
    BinOp,
    Expr,
    Num,
    Path,
    apply_op,
    is_ready,
    iter_nodes,
    parse,
    render,
    replace,
)
from curio.tinyworld.settings import Limits

# Two numbers joined by an operator, not part of a longer number, not the inside of a product's
# bracket: every place where the text *reads* like a ready operation. Overlapping matches included.
_ADJACENT = re.compile(r"(?=(?<![\d)])(\d+)([-+*])(\d+)(?![\d(]))")


@dataclass(frozen=True)
class Step:
    """One move and its effect.

    Attributes:
        kind: ``"reduce"``, ``"distribute"`` or ``"misread"``.
        path: the node the move acts on (``()`` for a misread, which acts on the text).
        head: text of that node, e.g. ``9*3`` or ``3*(4+5)``; identifies the move.
        rhs: what the node becomes, e.g. ``27`` or ``3*4+3*5``.
        after: the whole expression after the move.
    """

    kind: str
    path: Path
    head: str
    rhs: str
    after: Expr


def _node_at(expr: Expr, path: Path) -> Expr:
    for side in path:
        assert isinstance(expr, BinOp)
        expr = expr.right if side else expr.left
    return expr


def reduce_at(expr: Expr, path: Path, value: int | None = None) -> Step:
    """Evaluate the ready operation at ``path``; ``value`` overrides the true result (an arithmetic slip)."""
    node = _node_at(expr, path)
    assert isinstance(node, BinOp) and isinstance(node.left, Num) and isinstance(node.right, Num)
    if value is None:
        value = apply_op(node.op, node.left.value, node.right.value)
    return Step("reduce", path, render(node), str(value), replace(expr, path, Num(value)))


def distributed(node: Expr, limits: Limits | None) -> BinOp | None:
    """``a*b±a*c`` for a node ``a*(b±c)`` (or the mirror image), or None if it is not of that form.

    With ``limits``, also None where the world does not offer the step: a new product would leave the
    limits, or the factor is 0 or 1 (distributing it only lengthens the solution). Without, any such
    node distributes (the algebra alone, as a verifier needs it).
    """
    if not (isinstance(node, BinOp) and node.op == "*"):
        return None
    if isinstance(node.left, Num):
        scalar, bracket, scalar_left = node.left, node.right, True
    else:
        scalar, bracket, scalar_left = node.right, node.left, False
    if not (isinstance(scalar, Num) and isinstance(bracket, BinOp) and bracket.op in ("+", "-")):
        return None
    if not (isinstance(bracket.left, Num) and isinstance(bracket.right, Num)):
        return None
    pairs = [(scalar, inner) if scalar_left else (inner, scalar) for inner in (bracket.left, bracket.right)]
    if limits is not None and (
        scalar.value < 2 or not all(limits.allows("*", left.value, right.value) for left, right in pairs)
    ):
        return None
    return BinOp(bracket.op, BinOp("*", *pairs[0]), BinOp("*", *pairs[1]))


def candidate_steps(expr: Expr, limits: Limits) -> list[Step]:
    """Every distinct valid next step, ordered by where its node starts in the text.

    Moves with the same HEAD (e.g. two copies of ``3*3``) count once and act on the leftmost copy, so
    the HEAD alone decides the rest of the line.
    """
    found: dict[str, Step] = {}
    for path, node in iter_nodes(expr):
        if is_ready(node):
            step = reduce_at(expr, path)
        else:
            rewritten = distributed(node, limits)
            if rewritten is None:
                continue
            step = Step("distribute", path, render(node), render(rewritten), replace(expr, path, rewritten))
        found.setdefault(step.head, step)
    return list(found.values())


def misread_steps(expr: Expr, limits: Limits) -> list[Step]:
    """Every precedence slip ``expr``'s text offers, in text order, one per distinct HEAD.

    A slip evaluates ``a op b`` where the text shows ``a op b`` but the tree holds no such operation
    (``2+4`` in ``2+4*3``, ``3-2`` in ``7*3-2``), a HEAD that no valid step has, with a result in the
    limits. The rest of the expression is read back from the rewritten text, so a solution carries on
    from the misreading as a person would; whether that aftermath stays in the limits is the writer's
    check.
    """
    text = render(expr)
    valid = {step.head for step in candidate_steps(expr, limits)}
    found: dict[str, Step] = {}
    for match in _ADJACENT.finditer(text):
        left, op, right = int(match[1]), match[2], int(match[3])
        head = f"{left}{op}{right}"
        if head in valid or head in found or not limits.allows(op, left, right):
            continue
        start = match.start()
        value = apply_op(op, left, right)
        found[head] = Step("misread", (), head, str(value), parse(text[:start] + str(value) + text[start + len(head) :]))
    return list(found.values())
