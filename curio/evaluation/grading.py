"""Scoring model responses against ground truths (spec section 9).

Math: a response is correct if its last ``\\boxed{...}`` equals the ground truth after
:func:`~curio.evaluation.answers.normalize_answer`, or math-verify judges its answer equivalent;
a response without a box is handed to math-verify whole, which judges the last expression it
finds. Boxed: the same, except that a response without a box is wrong (for worlds where any
intermediate expression equals the answer, such as the fork world, whose solutions rewrite one
expression step by step).
Multiple choice: the label the response commits to (see
:func:`~curio.evaluation.answers.extract_choice`) equals the ground-truth label.

math-verify's own timeouts use ``SIGALRM``, which only works on the main thread and cannot stop
SymPy inside C code, so it runs with its timeouts off inside a :class:`TimeoutPool`, which enforces
a per-sample limit from outside. Cheap decisions (normalised string match, two integers) never leave
the calling process, and identical (ground truth, answer) pairs are verified once per batch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from math_verify import parse, verify

from curio.evaluation.answers import (
    answer_region,
    as_integer,
    extract_choice,
    last_boxed,
    latex_fixups,
    normalize_answer,
    normalize_choice,
    normalize_gold,
)
from curio.evaluation.timeout_pool import TimeoutPool

GraderKind = Literal["math", "boxed", "choice"]
GRADER_KINDS: tuple[str, ...] = ("math", "boxed", "choice")
#: The kinds that grade a math answer (their ground truths are normalised as math).
MATH_KINDS: tuple[str, ...] = ("math", "boxed")

# math-verify warns once per process that its timeout is off; the pool's timeout replaces it.
logging.getLogger("math_verify").setLevel(logging.ERROR)


@dataclass(frozen=True)
class Grade:
    """The verdict on one sample.

    Attributes:
        correct: whether the sample counts as solved. False whenever grading failed or timed out.
        extracted: the final answer in canonical form (normalised math answer or choice label),
            used for majority voting and answer diversity; None when the sample gave no answer.
        error: why grading failed (``"ExceptionType: message"``), else None.
        timed_out: whether checking this sample ran out of time.
    """

    correct: bool
    extracted: str | None
    error: str | None = None
    timed_out: bool = False


def grade_choice(response: str, ground_truth: str, require_think_close: bool = False) -> Grade:
    """Grade one multiple-choice response: its committed label against the ground-truth label."""
    region = answer_region(response, require_think_close)
    label = None if region is None else extract_choice(region)
    return Grade(
        correct=label is not None and label == normalize_choice(ground_truth), extracted=label
    )


@lru_cache(maxsize=4096)
def _parse_gold(ground_truth: str) -> list:
    # Boxing the truth makes math-verify read all of it as one answer (verl's convention).
    # normalize_gold is idempotent: golds the loaders normalised already pass through unchanged.
    return parse("\\boxed{" + normalize_gold(ground_truth) + "}", parsing_timeout=None)


def math_verify_equal(job: tuple[str, str]) -> tuple[bool, str | None]:
    """math-verify's verdict on ``(ground_truth, answer_text)`` and the answer string it found.

    Runs inside a pool worker, without math-verify's signal timeouts; the pool bounds its time.
    """
    ground_truth, answer_text = job
    gold = _parse_gold(ground_truth)
    pred = parse(latex_fixups(answer_text), parsing_timeout=None)
    # parse() returns [sympy object, matched string] when it finds an answer.
    found = next((p for p in reversed(pred) if isinstance(p, str)), None)
    return bool(gold and pred and verify(gold, pred, timeout_seconds=None)), found


class Grader:
    """Grades batches of responses; math checks run in worker processes with a per-sample limit.

    Args:
        timeout_s: per-sample time limit for math-verify; a sample over it is wrong and counted.
        num_workers: worker processes (default: one per usable CPU, at most 16).
        grace_s: extra time before a worker stuck in C code is killed and replaced.
        memory_limit_mb: address-space headroom per worker; runaway SymPy becomes a counted error.
        start_method: multiprocessing start method for the workers (see :class:`TimeoutPool`).

    Workers start on the first math batch and live until :meth:`close` (or the end of a ``with``
    block), so create one grader per evaluation run and reuse it across benchmarks. Like any
    spawned process they import the entry-point module: keep its work under
    ``if __name__ == "__main__":``.
    """

    def __init__(
        self,
        timeout_s: float = 10.0,
        num_workers: int | None = None,
        grace_s: float = 5.0,
        memory_limit_mb: int | None = 4096,
        start_method: str = "forkserver",
    ) -> None:
        self._pool: TimeoutPool[tuple[str, str], tuple[bool, str | None]] = TimeoutPool(
            math_verify_equal,
            num_workers=num_workers,
            timeout_s=timeout_s,
            grace_s=grace_s,
            memory_limit_mb=memory_limit_mb,
            start_method=start_method,
        )

    def __enter__(self) -> Grader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the worker processes."""
        self._pool.close()

    def grade(
        self,
        responses: Sequence[str],
        ground_truths: Sequence[str],
        kind: GraderKind,
        require_think_close: bool = False,
    ) -> list[Grade]:
        """One :class:`Grade` per response, in order.

        Args:
            responses: model outputs (the generated text only).
            ground_truths: the reference answer for each response (repeat it for n samples).
            kind: ``"math"``, ``"boxed"`` or ``"choice"``.
            require_think_close: only text after the last ``</think>`` may hold the answer; a
                response without ``</think>`` is wrong (the RL reward rule).
        """
        if len(responses) != len(ground_truths):
            raise ValueError(f"{len(responses)} responses but {len(ground_truths)} ground truths")
        if kind == "choice":
            return [
                grade_choice(r, g, require_think_close) for r, g in zip(responses, ground_truths)
            ]
        if kind not in MATH_KINDS:
            raise ValueError(f"unknown grader kind {kind!r}; expected one of {GRADER_KINDS}")
        return self._grade_math(responses, ground_truths, require_think_close, require_box=kind == "boxed")

    def _grade_math(
        self, responses: Sequence[str], ground_truths: Sequence[str], require_think_close: bool,
        require_box: bool,
    ) -> list[Grade]:
        grades: list[Grade | None] = [None] * len(responses)
        # (ground truth, text for math-verify) -> (sample indices, normalised boxed answer or None)
        jobs: dict[tuple[str, str], tuple[list[int], str | None]] = {}
        truths: dict[str, str] = {}
        for i, (response, truth) in enumerate(zip(responses, ground_truths)):
            region = answer_region(response, require_think_close)
            if region is None:
                grades[i] = Grade(correct=False, extracted=None)
                continue
            boxed = last_boxed(region)
            if boxed is None and require_box:
                grades[i] = Grade(correct=False, extracted=None)
                continue
            if boxed is None:
                jobs.setdefault((truth, region), ([], None))[0].append(i)
                continue
            answer = normalize_answer(boxed)
            if truth not in truths:
                truths[truth] = normalize_answer(truth)
            if answer == truths[truth]:
                grades[i] = Grade(correct=True, extracted=answer)
                continue
            answer_int, truth_int = as_integer(answer), as_integer(truths[truth])
            if answer_int is not None and truth_int is not None:
                grades[i] = Grade(correct=answer_int == truth_int, extracted=answer)
                continue
            jobs.setdefault((truth, "\\boxed{" + boxed + "}"), ([], answer))[0].append(i)

        outcomes = self._pool.map(list(jobs))
        for (indices, answer), outcome in zip(jobs.values(), outcomes):
            correct, found = outcome.value or (False, None)
            if answer is None and found is not None:
                answer = normalize_answer(found)
            grade = Grade(correct, answer, error=outcome.error, timed_out=outcome.timed_out)
            for i in indices:
                grades[i] = grade
        return grades  # type: ignore[return-value]  # every index got a grade above
