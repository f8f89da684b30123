"""Arithmetic expression trees: what every tiny-world problem and solution step is made of.

An expression is a binary tree of non-negative integers joined by ``+``, ``-`` and ``*``. Its text form
uses no spaces and the fewest brackets that still parse back to *the same tree* (not merely the same
value): ``7+(3+4)`` keeps its brackets because which operations are ready to evaluate depends on the
tree, and the tree is what defines the valid next steps.

Nodes are addressed by paths (a tuple of 0 = left, 1 = right) because equal subtrees compare equal, so
a node's value alone cannot say *which* occurrence is meant.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Union

OPS: tuple[str, ...] = ("+", "-", "*")
PRECEDENCE: dict[str, int] = {"+": 1, "-": 1, "*": 2}

Path = tuple[int, ...]


@dataclass(frozen=True)
class Num:
    """A non-negative integer leaf."""

    value: int


@dataclass(frozen=True)
class BinOp:
    """A binary operation ``left op right``."""

    op: str
    left: Expr
    right: Expr


Expr = Union[Num, BinOp]


def apply_op(op: str, a: int, b: int) -> int:
    """The result of ``a op b``."""
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    raise ValueError(f"unknown operator {op!r}")


def evaluate(expr: Expr) -> int:
    """The value of an expression."""
    if isinstance(expr, Num):
        return expr.value
    return apply_op(expr.op, evaluate(expr.left), evaluate(expr.right))


def is_ready(expr: Expr) -> bool:
    """True for an operation whose two operands are already numbers (it can be evaluated now)."""
    return isinstance(expr, BinOp) and isinstance(expr.left, Num) and isinstance(expr.right, Num)


def count_ops(expr: Expr) -> int:
    """Number of operations in the tree."""
    if isinstance(expr, Num):
        return 0
    return 1 + count_ops(expr.left) + count_ops(expr.right)


def _needs_brackets(child: Expr, parent_op: str, is_right: bool) -> bool:
    # Left-associative parsing: a right child of equal precedence must be bracketed to stay a right child.
    if isinstance(child, Num):
        return False
    child_prec, parent_prec = PRECEDENCE[child.op], PRECEDENCE[parent_op]
    return child_prec < parent_prec or (is_right and child_prec == parent_prec)


def render(expr: Expr) -> str:
    """Text form of an expression, e.g. ``(7+2)*3-4*2``."""
    if isinstance(expr, Num):
        return str(expr.value)
    left, right = render(expr.left), render(expr.right)
    if _needs_brackets(expr.left, expr.op, is_right=False):
        left = f"({left})"
    if _needs_brackets(expr.right, expr.op, is_right=True):
        right = f"({right})"
    return f"{left}{expr.op}{right}"


def iter_nodes(expr: Expr, path: Path = ()) -> Iterator[tuple[Path, Expr]]:
    """All ``(path, node)`` pairs in pre-order: the order in which the nodes' texts start, left to right
    (a node's text starts no later than its children's, and a left subtree's text precedes the right's).
    """
    yield path, expr
    if isinstance(expr, BinOp):
        yield from iter_nodes(expr.left, path + (0,))
        yield from iter_nodes(expr.right, path + (1,))


def replace(expr: Expr, path: Path, new: Expr) -> Expr:
    """A copy of ``expr`` with the node at ``path`` replaced by ``new``."""
    if not path:
        return new
    if not isinstance(expr, BinOp):
        raise ValueError(f"path {path} descends into a number")
    if path[0] == 0:
        return BinOp(expr.op, replace(expr.left, path[1:], new), expr.right)
    return BinOp(expr.op, expr.left, replace(expr.right, path[1:], new))


class _Parser:
    """Recursive-descent parser for the grammar ``render`` writes (no spaces, no unary minus)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def parse(self) -> Expr:
        expr = self._sum()
        if self.pos != len(self.text):
            raise ValueError(f"unexpected {self.text[self.pos]!r} at {self.pos} in {self.text!r}")
        return expr

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _sum(self) -> Expr:
        expr = self._product()
        while self._peek() in ("+", "-"):
            op = self._peek()
            self.pos += 1
            expr = BinOp(op, expr, self._product())
        return expr

    def _product(self) -> Expr:
        expr = self._atom()
        while self._peek() == "*":
            self.pos += 1
            expr = BinOp("*", expr, self._atom())
        return expr

    def _atom(self) -> Expr:
        if self._peek() == "(":
            self.pos += 1
            expr = self._sum()
            if self._peek() != ")":
                raise ValueError(f"missing ')' at {self.pos} in {self.text!r}")
            self.pos += 1
            return expr
        start = self.pos
        while self._peek().isdigit():
            self.pos += 1
        if start == self.pos:
            raise ValueError(f"expected a number at {start} in {self.text!r}")
        return Num(int(self.text[start : self.pos]))


def parse(text: str) -> Expr:
    """Parse the text form back into a tree; raises ``ValueError`` on malformed input."""
    return _Parser(text).parse()
