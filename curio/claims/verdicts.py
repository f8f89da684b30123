"""The five questions of the claims study and the rule that answers each, fixed before any run.

A *part* compares one number between two models, seed by seed (seed s of one experiment against
seed s of the other; the base model, which is not trained, is one constant). With the paired
differences d_1..d_S over S seeds, mean m and standard error se = std(d) / sqrt(S):

- **supports**: every d_s has the claimed sign and |m| > 2 se;
- **contradicts**: every d_s has the opposite sign and |m| > 2 se;
- **inconclusive**: anything else, and always with a single seed (no spread to judge by).

A question with several parts *supports* the paper when every part does, *contradicts* it when any
part does, and is inconclusive otherwise. "Similar avg@n" (question 3) is a tolerance, not a test:
mean ID avg@n within :data:`SIMILAR_AVG` of vanilla SFT's. Accuracy is avg@n (the share of correct
samples; the unbiased pass@1 is the same number, computed by a formula that rounds differently).

With an RL stage (``<experiment>+rl`` models, docs/claims_v2_protocol.md) three more: 6 and 7 by
the same paired rule (7 on each seed's RL gain, after RL minus after SFT); 8, across experiments,
by Spearman's rho between the seed means of fork entropy after SFT and ID avg@n after RL, with a
one-sided permutation p-value (:func:`rank_correlation`): *supports* when rho > 0 and p < 0.05,
*contradicts* when rho < 0 and p < 0.05 the other way, *inconclusive* otherwise.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from curio.claims.plan import BASE

SUPPORTS, CONTRADICTS, INCONCLUSIVE = "supports", "contradicts", "inconclusive"
NOT_RUN = "not run"  # the study did not train an experiment the question needs
#: Question 3's "similar avg@n": absolute difference in ID avg@n (0.02 = 2 percentage points).
SIMILAR_AVG = 0.02
#: Slack for float rounding when a mean of shares is held to a threshold: avg@n is a count over
#: n x problems, inexact in binary, so a mean gap of exactly 2 points can come out 2 + 4e-16.
ROUNDING = 1e-12

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
    """Compare ``metric`` of experiment ``a`` with ``b`` seed by seed (``b`` may be the base model,
    sampled once: its one row stands against every seed)."""
    rows_a, rows_b = table[a], table[b]
    if b == BASE:
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


#: Question 8: permutations drawn for the p-value, their seed, and the significance level.
PERMUTATIONS, PERMUTATION_SEED, ALPHA = 100_000, 0, 0.05
#: Question 8 is not asked of fewer objectives than this (the smaller presets train two).
MIN_EXPERIMENTS = 4


def _ranks(values: Sequence[float]) -> list[float]:
    """Ranks 1..n, ties sharing their mean rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for i in order[start : end + 1]:
            ranks[i] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def _pearson(x: Sequence[float], y: Sequence[float]) -> float:
    mx, my = sum(x) / len(x), sum(y) / len(y)
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx, syy = sum((a - mx) ** 2 for a in x), sum((b - my) ** 2 for b in y)
    return sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else float("nan")


def rank_correlation(x: Sequence[float], y: Sequence[float]) -> tuple[float, float, float]:
    """Spearman's rho of ``x`` and ``y`` and its one-sided permutation p-values ``(rho, p_greater,
    p_less)``: the share of :data:`PERMUTATIONS` random shuffles of ``y`` (seeded) whose rho is at
    least / at most the observed one, counting the observed order itself."""
    rx, ry = _ranks(x), _ranks(y)
    rho = _pearson(rx, ry)
    rng = random.Random(PERMUTATION_SEED)
    shuffled = list(ry)
    greater = less = 1
    for _ in range(PERMUTATIONS):
        rng.shuffle(shuffled)
        value = _pearson(rx, shuffled)
        greater += value >= rho - 1e-12
        less += value <= rho + 1e-12
    return rho, greater / (PERMUTATIONS + 1), less / (PERMUTATIONS + 1)


def _beyond(value: float, limit: float, sign: str = "") -> str:
    """``value`` with 3 decimals (1 if it is 1 or more in size), or with as many more as it takes for
    the shown number to compare with ``limit`` (in size) as the value does: a verdict decided by a
    threshold never prints beside a number that reads as being on the threshold's other side."""
    def side(x: float) -> int:
        return (abs(x) > abs(limit)) - (abs(x) < abs(limit))

    digits = 1 if abs(value) >= 1 else 3
    shown = f"{value:{sign}.{digits}f}"
    while side(float(shown)) != side(value) and digits < 15:
        digits += 1
        shown = f"{value:{sign}.{digits}f}"
    return shown


def _with_rl_gains(table: Table) -> dict[str, Sequence[Mapping[str, float]]]:
    """``table`` plus ``<experiment>:gain`` rows, each seed's ID and OOD avg@n after RL minus after SFT."""
    out = dict(table)
    for name in list(table):
        if name.endswith("+rl") and name[: -len("+rl")] in table:
            sft, rl = table[name[: -len("+rl")]], table[name]
            out[name[: -len("+rl")] + ":gain"] = [
                {key: after[key] - before[key] for key in ("id/avg", "ood/avg")}
                for before, after in zip(sft, rl, strict=True)
            ]
    return out


def _correlation_answer(table: Table, fork_metric: str, where: str, experiments: Sequence[str]) -> Answer:
    """Question 8 over ``experiments`` (the study's objectives): answered only once every one of them
    is done after SFT and after RL, as the protocol registers it."""
    question = (f"Across SFT objectives, entropy at {where} after SFT correlates with ID avg@n after GRPO "
                "(Spearman, permutation test).")
    names = list(experiments)
    if len(names) < MIN_EXPERIMENTS or any(n not in table or f"{n}+rl" not in table for n in names):
        return Answer(8, question, NOT_RUN, ())
    x = [sum(s[fork_metric] for s in table[n]) / len(table[n]) for n in names]
    y = [sum(s["id/avg"] for s in table[f"{n}+rl"]) / len(table[f"{n}+rl"]) for n in names]
    rho, p_greater, p_less = rank_correlation(x, y)
    verdict = (SUPPORTS if rho > 0 and p_greater < ALPHA else CONTRADICTS if rho < 0 and p_less < ALPHA
               else INCONCLUSIVE)
    note = (f"rho = {rho:+.2f} over {len(names)} objectives (one-sided p = "
            f"{_beyond(p_greater if rho >= 0 else p_less, ALPHA)}, {PERMUTATIONS:,} permutations)")
    return Answer(8, question, verdict, (), note)


def answer_all(
    table: Table, k_max: int, fork_metric: str = "H/choice", rl: bool = False, experiments: Sequence[str] = (),
) -> list[Answer]:
    """Answer the five questions from ``table``, and with ``rl`` (a study with an RL stage) questions
    6-8 too; ``k_max`` is the largest k of pass@k (the samples), ``fork_metric`` the probe entropy
    that questions 1, 3 and 8 compare (see :data:`FORK_WORDS`), ``experiments`` the objectives
    question 8 ranks (all of them must be done).

    A question needing an experiment that ``table`` lacks (a smaller preset) is answered ``not run``.
    """
    top = f"pass@{k_max}"
    where, adjective = FORK_WORDS[fork_metric]
    questions = [
        (1, f"Vanilla SFT lowers entropy at {where} relative to the base model.",
         [(f"{adjective} entropy, SFT - base", "ce", "base", fork_metric, -1)]),
        (2, "A large entropy bonus raises entropy at determined steps and costs accuracy.",
         [("determined-token entropy, large bonus - SFT", "entropy_large", "ce", "H/determined", +1),
          ("ID avg@n, large bonus - SFT", "entropy_large", "ce", "id/avg", -1)]),
        (3, f"CurioSFT keeps more {adjective} entropy than vanilla SFT at similar avg@n.",
         [(f"{adjective} entropy, CurioSFT - SFT", "curio", "ce", fork_metric, +1)]),
        (4, f"CurioSFT has higher pass@k than vanilla SFT at large k (k = {k_max}).",
         [(f"ID {top}, CurioSFT - SFT", "curio", "ce", f"id/{top}", +1),
          (f"OOD {top}, CurioSFT - SFT", "curio", "ce", f"ood/{top}", +1)]),
        (5, "Entropy-guided temperature beats a fixed temperature.",
         [("ID avg@n, entropy-guided - fixed", "curio", "curio_fixed", "id/avg", +1),
          (f"ID {top}, entropy-guided - fixed", "curio", "curio_fixed", f"id/{top}", +1)]),
    ]
    if rl:
        table = _with_rl_gains(table)
        questions += [
            (6, "CurioSFT → GRPO beats SFT → GRPO on avg@n after the same RL budget.",
             [("ID avg@n after GRPO, CurioSFT - SFT start", "curio+rl", "ce+rl", "id/avg", +1),
              ("OOD avg@n after GRPO, CurioSFT - SFT start", "curio+rl", "ce+rl", "ood/avg", +1)]),
            (7, "The RL stage's gain over its own SFT start is larger for CurioSFT than for SFT.",
             [("ID avg@n gain from GRPO, CurioSFT - SFT", "curio:gain", "ce:gain", "id/avg", +1),
              ("OOD avg@n gain from GRPO, CurioSFT - SFT", "curio:gain", "ce:gain", "ood/avg", +1)]),
        ]
    answers = []
    for number, question, specs in questions:
        if any(a not in table or b not in table for _, a, b, _, _ in specs):
            answers.append(Answer(number, question, NOT_RUN, ()))
            continue
        parts = tuple(part(table, *spec) for spec in specs)
        verdict, note = combine(parts), ""
        if number == 3:  # "at similar avg@n": a tolerance on the mean gap, shown as an extra part
            gap = part(table, "ID avg@n, CurioSFT - SFT", "curio", "ce", "id/avg", +1)
            if abs(gap.mean) > SIMILAR_AVG + ROUNDING:
                note = (f"ID avg@n differs by {_beyond(100 * gap.mean, 100 * SIMILAR_AVG, '+')} points (more than the "
                        f"{100 * SIMILAR_AVG:.0f}-point tolerance for 'similar')")
                if verdict == SUPPORTS:
                    verdict = INCONCLUSIVE
            parts = (*parts, gap)
        answers.append(Answer(number, question, verdict, parts, note))
    if rl:
        answers.append(_correlation_answer(table, fork_metric, where, experiments))
    return answers
