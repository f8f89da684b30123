"""What an evaluation benchmark is: named problems with reference answers and how to grade them."""

from __future__ import annotations

from dataclasses import dataclass, replace

from curio.evaluation.answers import normalize_gold
from curio.evaluation.grading import GRADER_KINDS, MATH_KINDS, GraderKind

GROUPS: tuple[str, ...] = ("id", "ood")
"""In-distribution (the math sets the model was trained for) and out-of-distribution benchmarks."""


@dataclass(frozen=True)
class Problem:
    """One benchmark problem.

    Attributes:
        prompt: chat messages ``[{"role": ..., "content": ...}, ...]`` to render with the model's
            chat template.
        ground_truth: the reference answer (a LaTeX expression, or a choice label such as ``"C"``);
            a math benchmark's are normalised when it is built
            (:func:`~curio.evaluation.answers.normalize_gold`: ``4.5e33`` -> ``4.5\\times10^{33}``, ...).
        index: position in the source file, to trace results back to it.
    """

    prompt: tuple[dict[str, str], ...]
    ground_truth: str
    index: int


@dataclass(frozen=True)
class Benchmark:
    """A named list of problems graded one way.

    Attributes:
        name: short identifier used in metric names (``aime24``).
        group: ``"id"`` or ``"ood"``; group means average the benchmarks in a group unweighted.
        grader: ``"math"``, ``"boxed"`` or ``"choice"`` (see :mod:`curio.evaluation.grading`).
        problems: the problems, in file order.
    """

    name: str
    group: str
    grader: GraderKind
    problems: tuple[Problem, ...]

    def __post_init__(self) -> None:
        if self.group not in GROUPS:
            raise ValueError(
                f"benchmark {self.name!r}: group must be one of {GROUPS}, got {self.group!r}"
            )
        if self.grader not in GRADER_KINDS:
            raise ValueError(
                f"benchmark {self.name!r}: grader must be one of {GRADER_KINDS}, "
                f"got {self.grader!r}"
            )
        if not self.problems:
            raise ValueError(f"benchmark {self.name!r} has no problems")
        if self.grader in MATH_KINDS:
            golds = tuple(replace(p, ground_truth=normalize_gold(p.ground_truth)) for p in self.problems)
            object.__setattr__(self, "problems", golds)

    def __len__(self) -> int:
        return len(self.problems)
