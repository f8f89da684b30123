"""The data splits of the tiny world: what each holds, how its rows look, and how they are drawn.

Splits (all problems distinct across all splits, compared by expression text):

- ``test_id`` / ``test_ood``: held-out problems (prompt + ground truth) from the ID / OOD setting.
- ``sft_val`` / ``sft_train``: expert demonstrations, all in one style (``leftmost`` policy, no slips).
- ``pretrain``: diverse solutions (``uniform`` policy) of ID problems, a fixed share with one slip and,
  in worlds that have them, a fixed share with one misreading (:mod:`curio.tinyworld.steps`).

Held-out splits are drawn first, so a change in a training split's size never changes the test sets.
Each split has its own random stream seeded by ``(seed, split name)``: the output is a pure function of
the config, identical on every run and platform.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curio.errors import DataError
from curio.files import read_records
from curio.tinyworld.expr import Expr, count_ops, evaluate, render
from curio.tinyworld.problems import sample_problem
from curio.tinyworld.prompts import prompt_messages
from curio.tinyworld.settings import Setting
from curio.tinyworld.solutions import POLICIES, Solution, write_flawed_solution, write_solution
from curio.tinyworld.worlds import WORLDS, World

Row = dict[str, Any]


@dataclass(frozen=True)
class SplitSpec:
    """One output file.

    Attributes:
        name: file stem (``<name>.jsonl``).
        setting: the problem distribution.
        size: number of rows.
        policy: key of :data:`curio.tinyworld.solutions.POLICIES` for chat splits; None for test splits.
        flawed_share: fraction of rows (rounded to a count, placed at random) whose solution has a slip.
        misread_share: fraction of rows whose solution has a misreading instead (drawn after the
            slipped rows, among the others).
    """

    name: str
    setting: Setting
    size: int
    policy: str | None
    flawed_share: float = 0.0
    misread_share: float = 0.0


@dataclass(frozen=True)
class CorpusConfig:
    """Which world, its sizes and knobs."""

    seed: int = 0
    world: str = "arith"
    pretrain_size: int = 12_000
    flawed_share: float = 0.15
    misread_share: float = 0.0
    sft_train_size: int = 2_000
    sft_val_size: int = 200
    test_id_size: int = 500
    test_ood_size: int = 500

    def __post_init__(self) -> None:
        if self.world not in WORLDS:
            raise ValueError(f"world={self.world!r}: choose one of {', '.join(sorted(WORLDS))}")
        if not 0 <= self.flawed_share + self.misread_share <= 1:
            raise ValueError(f"flawed_share + misread_share must be in [0, 1], got {self.flawed_share + self.misread_share}")

    def splits(self) -> list[SplitSpec]:
        """All splits, held-out ones first (see the module docstring)."""
        id_setting, ood_setting = WORLDS[self.world].id, WORLDS[self.world].ood
        return [
            SplitSpec("test_id", id_setting, self.test_id_size, policy=None),
            SplitSpec("test_ood", ood_setting, self.test_ood_size, policy=None),
            SplitSpec("sft_val", id_setting, self.sft_val_size, policy="leftmost"),
            SplitSpec("sft_train", id_setting, self.sft_train_size, policy="leftmost"),
            SplitSpec(
                "pretrain",
                id_setting,
                self.pretrain_size,
                policy="uniform",
                flawed_share=self.flawed_share,
                misread_share=self.misread_share,
            ),
        ]


#: Each world's shipped build: ``python -m curio.tinyworld build --world <name>`` starts from it.
DEFAULT_CONFIGS: dict[str, CorpusConfig] = {
    "arith": CorpusConfig(),
    # A tenth of the pretraining rows misread operator precedence once, besides the 15% slipped.
    # 500 expert demonstrations: with 2,000, three epochs of vanilla SFT reached 86% avg@8 on the
    # held-out sft_val problems, leaving RL too little room (assets/fork_world/ENTROPY_PROFILE.md).
    "forks": CorpusConfig(world="forks", misread_share=0.1, sft_train_size=500),
}


def test_row(problem: Expr, messages: list[dict[str, str]]) -> Row:
    """A held-out row: the prompt and the ground truth, nothing to train on."""
    return {
        "problem": render(problem),
        "answer": str(evaluate(problem)),
        "messages": messages,
        "n_ops": count_ops(problem),
    }


def chat_row(problem: Expr, messages: list[dict[str, str]], solution: Solution, world: World) -> Row:
    """A training row: the full conversation plus the character labels of the assistant content.

    ``answer`` is always the true value; ``flawed`` says whether the response boxes a different one.
    ``phrase_spans`` only where the world has wording forks.
    """
    row: Row = {
        "messages": messages + [{"role": "assistant", "content": solution.text}],
        "choice_spans": [list(span) for span in solution.choice_spans],
        "result_spans": [list(span) for span in solution.result_spans],
    }
    if world.phrasing.has_forks:
        row["phrase_spans"] = [list(span) for span in solution.phrase_spans]
    row.update({"answer": str(evaluate(problem)), "problem": render(problem), "flawed": solution.flawed})
    return row


def build_split(spec: SplitSpec, seed: int, seen: set[str], world: World) -> list[Row]:
    """Draw ``spec.size`` rows whose problems are not in ``seen``, adding them to ``seen``."""
    rng = random.Random(f"{seed}:{spec.name}")
    flawed_at = set(rng.sample(range(spec.size), round(spec.flawed_share * spec.size)))
    misread_at: set[int] = set()
    if spec.misread_share:
        others = [i for i in range(spec.size) if i not in flawed_at]
        misread_at = set(rng.sample(others, round(spec.misread_share * spec.size)))
    rows: list[Row] = []
    while len(rows) < spec.size:
        problem = sample_problem(rng, spec.setting)
        text = render(problem)
        if text in seen:
            continue
        messages = prompt_messages(text, rng)
        if spec.policy is None:
            row = test_row(problem, messages)
        else:
            policy, limits, phrasing = POLICIES[spec.policy], spec.setting.limits, world.phrasing
            if len(rows) in flawed_at:
                solution = write_flawed_solution(problem, policy, rng, limits, phrasing, "slip")
            elif len(rows) in misread_at:
                solution = write_flawed_solution(problem, policy, rng, limits, phrasing, "misread")
            else:
                solution = write_solution(problem, policy, rng, limits, phrasing)
            if solution is None:  # no flaw changes this problem's answer within the limits
                continue
            row = chat_row(problem, messages, solution, world)
        seen.add(text)
        rows.append(row)
    return rows


def build_corpus(config: CorpusConfig) -> dict[str, list[Row]]:
    """Every split of the corpus, by name, in :meth:`CorpusConfig.splits` order."""
    seen: set[str] = set()
    return {spec.name: build_split(spec, config.seed, seen, WORLDS[config.world]) for spec in config.splits()}


def write_jsonl(path: Path, rows: Iterable[Row]) -> None:
    """One JSON object per line, UTF-8, ``\\n`` line ends: byte-identical for identical rows."""
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_jsonl(path: Path) -> Iterator[Row]:
    """The rows of a JSONL file (a byte-order mark, CRLF line ends and blank lines are fine)."""
    for record in read_records(path):
        if record.problem is not None:
            raise DataError(f"{record.where}: {record.problem}")
        yield record.value
