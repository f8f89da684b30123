"""The five questions of the claims study and the rule that answers each, fixed before any run.

A *part* compares one number between two models, seed by seed (seed s of one experiment against
seed s of the other; the base model, which is not trained, is one constant). With the paired
differences d_1..d_S over S seeds, mean m and standard error se = std(d) / sqrt(S):

- **supports**: every d_s has the claimed sign and |m| > 2 se;
- **contradicts**: every d_s has the opposite sign and |m| > 2 se;
- **inconclusive**: anything else, and always with a single seed (no spread to judge by).

A question with several parts *supports* the paper when every part does, *contradicts* it when any
part does, and is inconclusive otherwise. "Similar pass@1" (question 3) is a tolerance, not a test:
mean ID pass@1 within :data:`SIMILAR_PASS1` of vanilla SFT's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

SUPPORTS, CONTRADICTS, INCONCLUSIVE = "supports", "contradicts", "inconclusive"
NOT_RUN = "not run"  # the study did not train an experiment the question needs
#: Question 3's "similar pass@1": absolute difference in ID pass@1 (0.02 = 2 percentage points).
SIMILAR_PASS1 = 0.02

#: per experiment, per seed (in seed order), the job's numbers (see curio.claims.measures).
Table = Mapping[str, Sequence[Mapping[str, float]]]


@dataclass(frozen=True)
class Part:
    """One paired comparison: ``metric`` of ``a`` minus ``b``, claimed to have ``sign``."""

    what: str
    a: str
    b: str
    metric: str
    sign: int
    diffs: tuple[float, ...]
    verdict: str

    @property
    def mean(self) -> float:
        return sum(self.diffs) / len(self.diffs)

    @property
    def std(self) -> float:
        if len(self.diffs) < 2:
            return float("nan")
        m = self.mean
        return math.sqrt(sum((d - m) ** 2 for d in self.diffs) / (len(self.diffs) - 1))


def judge(diffs: Sequence[float], sign: int) -> str:
    """The rule above for paired differences whose claimed sign is ``sign`` (+1 or -1)."""
    if len(diffs) < 2:
        return INCONCLUSIVE
    m = sum(diffs) / len(diffs)
    se = math.sqrt(sum((d - m) ** 2 for d in diffs) / (len(diffs) - 1) / len(diffs))
    if abs(m) <= 2 * se:
        return INCONCLUSIVE
    if all(d * sign > 0 for d in diffs):
        return SUPPORTS
    if all(d * sign < 0 for d in diffs):
        return CONTRADICTS
    return INCONCLUSIVE


def part(table: Table, what: str, a: str, b: str, metric: str, sign: int) -> Part:
    """Compare ``metric`` of experiment ``a`` with ``b`` seed by seed (``b`` may be the one base job)."""
    rows_a, rows_b = table[a], table[b]
    if len(rows_b) == 1:
        rows_b = list(rows_b) * len(rows_a)
    diffs = tuple(x[metric] - y[metric] for x, y in zip(rows_a, rows_b, strict=True))
    return Part(what, a, b, metric, sign, diffs, judge(diffs, sign))


def combine(parts: Sequence[Part]) -> str:
    verdicts = [p.verdict for p in parts]
    if all(v == SUPPORTS for v in verdicts):
        return SUPPORTS
    if CONTRADICTS in verdicts:
        return CONTRADICTS
    return INCONCLUSIVE


@dataclass(frozen=True)
class Answer:
    """A question, its verdict and the parts behind it, plus a note when a tolerance decided it."""

    number: int
    question: str
    verdict: str
    parts: tuple[Part, ...]
    note: str = ""


#: How the questions name the entropy they compare (the probe's key): the first world's only forks
#: are its step choices; the fork world's are its step choices and its wording forks.
FORK_WORDS = {"H/choice": ("choice points", "choice-point"), "H/fork": ("forks", "fork")}


def answer_all(table: Table, k_max: int, fork_metric: str = "H/choice") -> list[Answer]:
    """Answer the five questions from ``table``; ``k_max`` is the largest k of pass@k (the samples),
    ``fork_metric`` the probe entropy that questions 1 and 3 compare (see :data:`FORK_WORDS`).

    A question needing an experiment that ``table`` lacks (a smaller preset) is answered ``not run``.
    """
    top = f"pass@{k_max}"
    where, adjective = FORK_WORDS[fork_metric]
    questions = [
        (1, f"Vanilla SFT lowers entropy at {where} relative to the base model.",
         [(f"{adjective} entropy, SFT - base", "ce", "base", fork_metric, -1)]),
        (2, "A large entropy bonus raises entropy at determined steps and costs accuracy.",
         [("determined-token entropy, large bonus - SFT", "entropy_large", "ce", "H/determined", +1),
          ("ID pass@1, large bonus - SFT", "entropy_large", "ce", "id/pass@1", -1)]),
        (3, f"CurioSFT keeps more {adjective} entropy than vanilla SFT at similar pass@1.",
         [(f"{adjective} entropy, CurioSFT - SFT", "curio", "ce", fork_metric, +1)]),
        (4, f"CurioSFT has higher pass@k than vanilla SFT at large k (k = {k_max}).",
         [(f"ID {top}, CurioSFT - SFT", "curio", "ce", f"id/{top}", +1),
          (f"OOD {top}, CurioSFT - SFT", "curio", "ce", f"ood/{top}", +1)]),
        (5, "Entropy-guided temperature beats a fixed temperature.",
         [("ID pass@1, entropy-guided - fixed", "curio", "curio_fixed", "id/pass@1", +1),
          (f"ID {top}, entropy-guided - fixed", "curio", "curio_fixed", f"id/{top}", +1)]),
    ]
    answers = []
    for number, question, specs in questions:
        if any(a not in table or b not in table for _, a, b, _, _ in specs):
            answers.append(Answer(number, question, NOT_RUN, ()))
            continue
        parts = tuple(part(table, *spec) for spec in specs)
        verdict, note = combine(parts), ""
        if number == 3:  # "at similar pass@1": a tolerance on the mean gap, shown as an extra part
            gap = part(table, "ID pass@1, CurioSFT - SFT", "curio", "ce", "id/pass@1", +1)
            if abs(gap.mean) > SIMILAR_PASS1:
                note = (f"ID pass@1 differs by {100 * gap.mean:+.1f} points (more than the "
                        f"{100 * SIMILAR_PASS1:.0f}-point tolerance for 'similar')")
                if verdict == SUPPORTS:
                    verdict = INCONCLUSIVE
            parts = (*parts, gap)
        answers.append(Answer(number, question, verdict, parts, note))
    return answers
