"""The claims study's decision rule, on hand-made numbers."""

import pytest

from curio.claims.verdicts import (
    CONTRADICTS,
    INCONCLUSIVE,
    NOT_RUN,
    SIMILAR_PASS1,
    SUPPORTS,
    answer_all,
    judge,
)


@pytest.mark.parametrize(
    ("diffs", "sign", "expected"),
    [
        ((-0.30, -0.25, -0.35), -1, SUPPORTS),
        ((-0.30, -0.25, -0.35), +1, CONTRADICTS),
        ((-0.30, 0.02, -0.35), -1, INCONCLUSIVE),     # one seed disagrees
        ((-0.01, -0.50, -0.02), -1, INCONCLUSIVE),    # same sign, but the spread swamps the mean
        ((-0.30,), -1, INCONCLUSIVE),                 # one seed: no spread to judge by
        ((0.0, 0.0, 0.0), +1, INCONCLUSIVE),
    ],
)
def test_judge(diffs, sign, expected):
    assert judge(diffs, sign) == expected


def _job(choice, determined, pass1, pass_k, ood_k=None):
    return {"H/choice": choice, "H/determined": determined, "id/pass@1": pass1, "id/pass@64": pass_k,
            "ood/pass@64": pass_k if ood_k is None else ood_k}


def _table(curio_pass1=0.50):
    return {
        "base": [_job(1.40, 0.40, 0.30, 0.80)],
        "ce": [_job(0.80, 0.30, 0.50, 0.85), _job(0.82, 0.31, 0.52, 0.86), _job(0.79, 0.29, 0.49, 0.84)],
        "entropy_large": [_job(1.50, 0.90, 0.30, 0.90), _job(1.60, 0.95, 0.31, 0.91), _job(1.55, 0.92, 0.29, 0.89)],
        "curio": [_job(1.00, 0.30, curio_pass1, 0.90), _job(1.05, 0.31, curio_pass1 + 0.01, 0.92),
                  _job(1.02, 0.30, curio_pass1 - 0.01, 0.91)],
        "curio_fixed": [_job(1.00, 0.30, 0.50, 0.91), _job(1.05, 0.31, 0.50, 0.90), _job(1.02, 0.30, 0.50, 0.92)],
    }


def test_answers_follow_the_rule():
    verdicts = [a.verdict for a in answer_all(_table(), k_max=64)]
    # 1: SFT lowers choice entropy; 2: bonus raises determined entropy and costs pass@1;
    # 3: curio keeps choice entropy at similar pass@1; 4: higher pass@64 on ID and OOD;
    # 5: guided vs fixed: pass@1 equal on average, pass@64 mixed -> inconclusive.
    assert verdicts == [SUPPORTS, SUPPORTS, SUPPORTS, SUPPORTS, INCONCLUSIVE]


def test_similar_pass1_is_a_tolerance():
    answers = answer_all(_table(curio_pass1=0.50 - 2 * SIMILAR_PASS1), k_max=64)
    assert answers[2].verdict == INCONCLUSIVE
    assert "tolerance" in answers[2].note


def test_any_contradicting_part_contradicts():
    table = _table()
    table["curio"] = [dict(row, **{"ood/pass@64": 0.70 + 0.01 * i}) for i, row in enumerate(table["curio"])]
    assert answer_all(table, k_max=64)[3].verdict == CONTRADICTS


def test_questions_without_their_experiments_are_not_run():
    table = {name: rows for name, rows in _table().items() if name in ("base", "ce", "curio")}
    assert [a.verdict for a in answer_all(table, k_max=64)] == [
        SUPPORTS, NOT_RUN, SUPPORTS, SUPPORTS, NOT_RUN]
