"""How a solution step is worded: ``CONNECTOR HEAD EQUALS RHS [SEPARATOR AFTER] END``.

The first world words every step one way (``7-3=4, so 2+4*3``). The fork world offers several
equally valid wordings at four places of a line (``Then 7-3 is 4, giving 2+4*3.``), the
*connector forks* that, in real chains of thought, carry much of the entropy ("so", "thus", "wait",
"now"): the choice is free and changes nothing downstream. A diverse writer draws each uniformly; the
expert always writes the first option.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from curio.tinyworld.expr import BinOp, render
from curio.tinyworld.steps import Step


@dataclass(frozen=True)
class Phrasing:
    """The wordings a world allows; the first of each is the expert's.

    Attributes:
        connectors: what may open a step line (``""``: nothing).
        equals: what joins HEAD and RHS.
        separators: what joins RHS and AFTER (absent on the last step, where AFTER is the answer).
        ends: what ends the line (each ends in a newline).
    """

    connectors: tuple[str, ...] = ("",)
    equals: tuple[str, ...] = ("=",)
    separators: tuple[str, ...] = (", so ",)
    ends: tuple[str, ...] = ("\n",)

    def __post_init__(self) -> None:
        for name in ("connectors", "equals", "separators", "ends"):
            options = getattr(self, name)
            if not options or len(set(options)) != len(options):
                raise ValueError(f"Phrasing.{name} must be distinct options, at least one; got {options!r}")

    @property
    def has_forks(self) -> bool:
        """Whether any place of a line has more than one wording."""
        return any(len(options) > 1 for options in (self.connectors, self.equals, self.separators, self.ends))


@dataclass(frozen=True)
class Wording:
    """The wording chosen for one line."""

    connector: str
    equals: str
    separator: str
    end: str


def pick_wording(phrasing: Phrasing, rng: random.Random, diverse: bool) -> Wording:
    """The expert's wording, or a uniform draw at each fork (a place with one option draws nothing)."""

    def pick(options: Sequence[str]) -> str:
        return rng.choice(list(options)) if diverse and len(options) > 1 else options[0]

    return Wording(pick(phrasing.connectors), pick(phrasing.equals), pick(phrasing.separators), pick(phrasing.ends))


def write_line(step: Step, wording: Wording) -> str:
    """The solution line for ``step``, newline included."""
    tail = f"{wording.separator}{render(step.after)}" if isinstance(step.after, BinOp) else ""
    return f"{wording.connector}{step.head}{wording.equals}{step.rhs}{tail}{wording.end}"
