"""The reward of a response: the project's grader (math-verify in worker processes, timeouts), as
the RL stage's binary reward."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from curio.evaluation.grading import Grader, GraderKind


@dataclass(frozen=True)
class Rewards:
    """Attributes:
    values: 1.0 for a correct response, else 0.0, in the order given.
    failed: responses whose grading raised or timed out (scored 0, never a crash).
    """

    values: list[float]
    failed: int


class Reward:
    """Binary reward: 1 if the grader judges the response correct (spec section 11), else 0.

    Args:
        timeout_s: per-response math-verify limit; a response over it scores 0 and is counted.
        num_workers: grading worker processes.
        require_think_close: only text after ``</think>`` is graded, and a response without it
            scores 0 (the CurioSFT authors' reward rule).
    """

    def __init__(self, timeout_s: float = 10.0, num_workers: int = 1, require_think_close: bool = False):
        self.timeout_s, self.num_workers = timeout_s, num_workers
        self.require_think_close = require_think_close
        self._grader: Grader | None = None

    def __call__(self, responses: Sequence[str], ground_truths: Sequence[str], kind: GraderKind) -> Rewards:
        if self._grader is None:  # worker processes start on first use and live until close()
            from curio.evaluation.grading import Grader

            self._grader = Grader(timeout_s=self.timeout_s, num_workers=self.num_workers)
        grades = self._grader.grade(responses, ground_truths, kind, require_think_close=self.require_think_close)
        return Rewards([1.0 if g.correct else 0.0 for g in grades],
                       sum(g.error is not None or g.timed_out for g in grades))

    def close(self) -> None:
        if self._grader is not None:
            self._grader.close()
            self._grader = None
