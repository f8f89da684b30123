"""Solution steps: the valid moves from an expression, and the text line each move is written as.

Two kinds of move exist:

- ``reduce``: evaluate one ready operation ``x op y`` (both operands numbers). Every ready operation in
  the tree is a valid move, so independent sub-expressions can be evaluated in any order.
- ``distribute``: rewrite ``a*(b±c)`` as ``a*b±a*c`` (or ``(b±c)*a`` as ``b*a±c*a``) instead of first
  evaluating the bracket: a second *strategy*. Only offered for a factor of at least 2 whose new
  products stay in the limits.

A step is written as one line ``HEAD=RHS, so AFTER`` (``HEAD=RHS`` alone when AFTER is a number), e.g.
``7+2=9, so 9*3-8`` or ``3*(4+5)=3*4+3*5, so 3*4+3*5-2``. The HEAD names the move, so the choice of
move is made in the first characters of the line and everything after HEAD is determined by it.
"""

from __future__ import annotations

from dataclasses import dataclass

from curio.tinyworld.expr import (
    BinOp,
    Expr,
    Num,
    Path,
    apply_op,
    is_ready,
    iter_nodes,
    render,
    replace,
)
from curio.tinyworld.settings import Limits

STEP_SEPARATOR = ", so "


@dataclass(frozen=True)
class Step:
    """One move and its effect.

    Attributes:
        kind: ``"reduce"`` or ``"distribute"``.
        path: the node the move acts on.
        head: text of that node, e.g. ``9*3`` or ``3*(4+5)``; identifies the move.
        rhs: what the node becomes, e.g. ``27`` or ``3*4+3*5``.
        after: the whole expression after the move.
    """

    kind: str
    path: Path
    head: str
    rhs: str
    after: Expr

    @property
    def line(self) -> str:
        """The solution line for this step, newline included."""
        tail = f"{STEP_SEPARATOR}{render(self.after)}" if isinstance(self.after, BinOp) else ""
        return f"{self.head}={self.rhs}{tail}\n"


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
