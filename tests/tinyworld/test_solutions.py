"""Solutions: sound steps, the configured share of single slips, and hand-checked choice labels."""

from __future__ import annotations

import random
from collections.abc import Sequence

from curio.tinyworld.expr import evaluate, parse
from curio.tinyworld.grading import extract_boxed
from curio.tinyworld.settings import ID, Limits
from curio.tinyworld.solutions import POLICIES, Policy, branching_positions, leftmost_step, write_solution
from curio.tinyworld.steps import Step, candidate_steps
from curio.tinyworld.verify import verify_solution

from .conftest import SMALL


LEFTMOST = POLICIES["leftmost"]


def scripted(*heads: str) -> Policy:
    """A policy that takes the step with each given HEAD in turn, then the leftmost ones."""
    queue = list(heads)

    def step(options: Sequence[Step], rng: random.Random) -> Step:
        if queue:
            head = queue.pop(0)
            return next(step for step in options if step.head == head)
        return leftmost_step(options, rng)

    return Policy(step, diverse_wording=False)


def test_leftmost_solution_hand_checked():
    solution = write_solution(parse("2*3+4*5"), LEFTMOST, random.Random(0), Limits())
    assert solution.text == "2*3=6, so 6+4*5\n4*5=20, so 6+20\n6+20=26\n\\boxed{26}"
    assert solution.choice_spans == [(0, 1)]  # 2*3 or 4*5 first; afterwards every step is forced
    assert solution.result_spans == [(4, 5), (20, 22), (37, 39)]
    assert [solution.text[s:e] for s, e in solution.result_spans] == ["6", "20", "26"]
    assert solution.boxed == 26 and not solution.flawed
    assert solution.phrase_spans == []  # one wording: no wording forks


def test_distribute_and_shared_prefix_hand_checked():
    policy = scripted("3*(1+2)", "3*2", "3*4")
    solution = write_solution(parse("3*4+3*(1+2)"), policy, random.Random(0), Limits())
    assert solution.text == (
        "3*(1+2)=3*1+3*2, so 3*4+(3*1+3*2)\n"
        "3*2=6, so 3*4+(3*1+6)\n"
        "3*4=12, so 12+(3*1+6)\n"
        "3*1=3, so 12+(3+6)\n"
        "3+6=9, so 12+9\n"
        "12+9=21\n"
        "\\boxed{21}"
    )
    # Line 1: options 3*4, 3*(1+2), 1+2 -> branch at the first char (3 or 1) and, after "3*", at "4" or "(".
    # Line 2: options 3*4, 3*1, 3*2 -> branch only at the third char. Line 3: 3*4 or 3*1, third char.
    # Lines 4-6 are forced.
    assert solution.choice_spans == [(0, 1), (2, 3), (36, 37), (58, 59)]
    assert [solution.text[s:e] for s, e in solution.choice_spans] == ["3", "(", "2", "4"]
    assert solution.result_spans == [(38, 39), (60, 62), (82, 83), (101, 102), (117, 119)]
    assert verify_solution("3*4+3*(1+2)", solution.text) == []


def test_mirror_distribution_is_a_choice_for_the_expert_too():
    solution = write_solution(parse("(4+5)*3-2"), LEFTMOST, random.Random(0), Limits())
    assert solution.text == "4+5=9, so 9*3-2\n9*3=27, so 27-2\n27-2=25\n\\boxed{25}"
    assert solution.choice_spans == [(0, 1)]  # "(" would start distributing (4+5)*3
    assert solution.result_spans == [(4, 5), (20, 22), (37, 39)]


def test_branching_positions():
    assert branching_positions("3*4=", ["3*4=", "3*(1+2)=", "1+2="]) == [0, 2]
    assert branching_positions("1+2=", ["3*4=", "3*(1+2)=", "1+2="]) == [0]
    assert branching_positions("7*8=", ["7*8="]) == []


def test_every_step_offered_is_sound():
    expr = parse("3*(4+5)-(2+6)*2")
    for step in candidate_steps(expr, ID.limits):
        assert evaluate(step.after) == evaluate(expr)
    assert [step.head for step in candidate_steps(expr, ID.limits)] == ["3*(4+5)", "4+5", "(2+6)*2", "2+6"]


def test_corpus_solutions_are_correct(small_corpus):
    for name in ("pretrain", "sft_train", "sft_val"):
        for row in small_corpus[name]:
            response = row["messages"][2]["content"]
            errors = verify_solution(row["problem"], response)
            assert str(evaluate(parse(row["problem"]))) == row["answer"]
            if row["flawed"]:
                assert len(errors) == 1 and "but it is" in errors[0], (row["problem"], response, errors)
                assert extract_boxed(response) != row["answer"]
            else:
                assert errors == [], (row["problem"], response, errors)
                assert extract_boxed(response) == row["answer"]


def test_flawed_share_matches_config(small_corpus):
    flawed = sum(row["flawed"] for row in small_corpus["pretrain"])
    assert flawed == round(SMALL.flawed_share * SMALL.pretrain_size)
    assert not any(row["flawed"] for name in ("sft_train", "sft_val") for row in small_corpus[name])


def test_expert_style_is_leftmost_and_never_distributes(small_corpus):
    for row in small_corpus["sft_train"]:
        expr = parse(row["problem"])
        for line in row["messages"][2]["content"].split("\n")[:-1]:
            head = line.split("=")[0]
            reduces = [step for step in candidate_steps(expr, ID.limits) if step.kind == "reduce"]
            assert head == reduces[0].head
            expr = reduces[0].after


def test_pretraining_is_diverse(small_corpus):
    """The uniform policy takes non-leftmost steps and distributes: the base model sees every choice."""
    first_heads = [row["messages"][2]["content"].split("=")[0] for row in small_corpus["pretrain"]]
    leftmost = [candidate_steps(parse(row["problem"]), ID.limits) for row in small_corpus["pretrain"]]
    not_leftmost = sum(
        head != next(step.head for step in steps if step.kind == "reduce")
        for head, steps in zip(first_heads, leftmost)
    )
    assert 0.3 < not_leftmost / len(first_heads) < 0.8
    assert any("(" in head for head in first_heads)
