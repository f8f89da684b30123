"""The claims study's decision rule, on hand-made numbers."""

import pytest

from curio.claims.verdicts import (
    CONTRADICTS,
    INCONCLUSIVE,
    NOT_RUN,
    SIMILAR_AVG,
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
        ((-0.01, -0.50, -0.02), +1, INCONCLUSIVE),    # every seed the other way, but within the margin
        ((-0.30, 0.0, -0.35), -1, INCONCLUSIVE),      # a zero difference has no sign
    ],
)
def test_judge(diffs, sign, expected):
    assert judge(diffs, sign) == expected


def _job(choice, determined, avg, pass_k, ood_k=None):
    return {"H/choice": choice, "H/determined": determined, "id/avg": avg, "id/pass@64": pass_k,
            "ood/pass@64": pass_k if ood_k is None else ood_k}


def _table(curio_avg=0.50):
    return {
        "base": [_job(1.40, 0.40, 0.30, 0.80)],
        "ce": [_job(0.80, 0.30, 0.50, 0.85), _job(0.82, 0.31, 0.52, 0.86), _job(0.79, 0.29, 0.49, 0.84)],
        "entropy_large": [_job(1.50, 0.90, 0.30, 0.90), _job(1.60, 0.95, 0.31, 0.91), _job(1.55, 0.92, 0.29, 0.89)],
        "curio": [_job(1.00, 0.30, curio_avg, 0.90), _job(1.05, 0.31, curio_avg + 0.01, 0.92),
                  _job(1.02, 0.30, curio_avg - 0.01, 0.91)],
        "curio_fixed": [_job(1.00, 0.30, 0.50, 0.91), _job(1.05, 0.31, 0.50, 0.90), _job(1.02, 0.30, 0.50, 0.92)],
    }


def test_answers_follow_the_rule():
    verdicts = [a.verdict for a in answer_all(_table(), k_max=64)]
    # 1: SFT lowers choice entropy; 2: bonus raises determined entropy and costs avg@n;
    # 3: curio keeps choice entropy at similar avg@n; 4: higher pass@64 on ID and OOD;
    # 5: guided vs fixed: avg@n equal on average, pass@64 mixed -> inconclusive.
    assert verdicts == [SUPPORTS, SUPPORTS, SUPPORTS, SUPPORTS, INCONCLUSIVE]


def test_similar_avg_is_a_tolerance():
    answers = answer_all(_table(curio_avg=0.50 - 2 * SIMILAR_AVG), k_max=64)
    assert answers[2].verdict == INCONCLUSIVE
    assert "tolerance" in answers[2].note


def test_a_gap_of_exactly_the_tolerance_is_similar_whatever_the_float_rounding():
    """avg@n is a count over n x problems (12,800 here): curio 256 samples more than ce on every seed
    is exactly 2 points, which the floats make 2 + 2e-15; the protocol's "<= 2 points" holds."""
    table = _table()
    counts = (5000, 5100, 4950)
    table["ce"] = [dict(row, **{"id/avg": c / 12800}) for row, c in zip(table["ce"], counts)]
    table["curio"] = [dict(row, **{"id/avg": (c + 256) / 12800}) for row, c in zip(table["curio"], counts)]
    answer = answer_all(table, k_max=64)[2]
    assert sum(answer.parts[-1].diffs) / 3 > SIMILAR_AVG  # the rounding the rule must not read as a gap
    assert answer.verdict == SUPPORTS and answer.note == ""


def test_numbers_beside_a_threshold_show_its_side():
    from curio.claims.verdicts import _beyond

    assert _beyond(0.051, 0.05) == "0.051" and _beyond(0.05, 0.05) == "0.050"
    assert _beyond(0.0499995, 0.05) == "0.0499995"  # not "0.050" beside a p < 0.05 verdict
    assert _beyond(2.004, 2.0, "+") == "+2.004" and _beyond(-2.3, 2.0, "+") == "-2.3"


def test_any_contradicting_part_contradicts():
    table = _table()
    table["curio"] = [dict(row, **{"ood/pass@64": 0.70 + 0.01 * i}) for i, row in enumerate(table["curio"])]
    assert answer_all(table, k_max=64)[3].verdict == CONTRADICTS


def test_questions_without_their_experiments_are_not_run():
    table = {name: rows for name, rows in _table().items() if name in ("base", "ce", "curio")}
    assert [a.verdict for a in answer_all(table, k_max=64)] == [
        SUPPORTS, NOT_RUN, SUPPORTS, SUPPORTS, NOT_RUN]


def _rl_table(gains=(0.10, 0.12, 0.09), ce_gain=0.02, rho_sign=+1):
    """ce and curio after SFT and after RL at 3 seeds, plus four more objectives whose fork entropy
    after SFT orders their ID avg@n after RL (``rho_sign``) for question 8."""
    def row(fork, id_avg, ood_avg):  # questions 4-5 read pass@k too: set it from avg@n
        return {"H/fork": fork, "id/avg": id_avg, "ood/avg": ood_avg, "id/pass@64": id_avg, "ood/pass@64": ood_avg}

    table = {
        "base": [row(1.0, 0.3, 0.05)],
        "ce": [row(0.1, 0.45, 0.05), row(0.1, 0.46, 0.06), row(0.1, 0.44, 0.05)],
        "curio": [row(0.3, 0.45, 0.05), row(0.3, 0.46, 0.06), row(0.3, 0.44, 0.05)],
    }
    table["ce+rl"] = [row(0.05, r["id/avg"] + ce_gain, r["ood/avg"] + ce_gain) for r in table["ce"]]
    table["curio+rl"] = [row(0.1, r["id/avg"] + g, r["ood/avg"] + g) for r, g in zip(table["curio"], gains)]
    for i, name in enumerate(("dft", "gem", "eaft", "sed")):
        fork = 0.15 + 0.05 * i
        after = 0.5 + rho_sign * 0.02 * (i - 3)
        table[name] = [row(fork, 0.45, 0.05)] * 3
        table[f"{name}+rl"] = [row(0.05, after, 0.05)] * 3
    return table


def test_rl_questions_follow_the_rule():
    everything = ("ce", "curio", "dft", "gem", "eaft", "sed")
    answers = {a.number: a for a in answer_all(_rl_table(), 64, "H/fork", rl=True, experiments=everything)}
    assert answers[6].verdict == SUPPORTS and answers[7].verdict == SUPPORTS
    # 7 is paired on the gains: curio's gain minus ce's, seed by seed.
    assert answers[7].parts[0].diffs == pytest.approx((0.08, 0.10, 0.07))
    # Fork entropy after SFT: ce 0.10, curio 0.30, dft..sed 0.15-0.30, ordered like their ID avg@n
    # after RL except curio (0.55 with a 0.45 start): rho is positive, short of p < 0.05 with 6.
    assert answers[8].verdict == INCONCLUSIVE
    assert "rho = +0.77 over 6 objectives (one-sided p = 0.051, 100,000 permutations)" in answers[8].note
    same_gain = {a.number: a for a in answer_all(_rl_table(gains=(0.02, 0.02, 0.02)), 64, "H/fork", rl=True)}
    assert same_gain[7].verdict == INCONCLUSIVE
    worse = {a.number: a for a in answer_all(_rl_table(gains=(-0.05, -0.04, -0.06)), 64, "H/fork", rl=True)}
    assert worse[6].verdict == CONTRADICTS and worse[7].verdict == CONTRADICTS
    without = [a.number for a in answer_all(_rl_table(), 64, "H/fork", rl=False)]
    assert without == [1, 2, 3, 4, 5]


def _ranked_table(sign):
    """Six objectives whose fork entropy after SFT (0.1 ... 0.6) orders their ID avg@n after RL
    the same way (sign +1) or the opposite way (-1); two seeds each."""
    table = {"base": [{"H/fork": 1.0, "id/avg": 0.3}]}
    for i, name in enumerate(("ce", "curio", "dft", "gem", "eaft", "sed")):
        table[name] = [{"H/fork": 0.1 * (i + 1), "id/avg": 0.4}] * 2
        table[f"{name}+rl"] = [{"H/fork": 0.05, "id/avg": 0.5 + sign * 0.01 * i}] * 2
    return table


def test_question_8_reads_the_rank_correlation():
    from curio.claims.verdicts import _correlation_answer

    six = ("ce", "curio", "dft", "gem", "eaft", "sed")
    for sign, verdict in ((+1, SUPPORTS), (-1, CONTRADICTS)):
        answer = _correlation_answer(_ranked_table(sign), "H/fork", "forks", six)
        assert answer.verdict == verdict, answer.note
        assert f"rho = {sign:+.2f} over 6 objectives" in answer.note
    # Not before every objective of the study is done, after SFT and after RL.
    unfinished = {k: v for k, v in _ranked_table(+1).items() if k != "sed+rl"}
    assert _correlation_answer(unfinished, "H/fork", "forks", six).verdict == NOT_RUN
    assert _correlation_answer(_ranked_table(+1), "H/fork", "forks", ("ce", "curio", "dft")).verdict == NOT_RUN


@pytest.mark.parametrize(("y", "rho"), [
    ([1, 2, 3, 4, 5, 6], 1.0),
    ([6, 5, 4, 3, 2, 1], -1.0),
    ([1, 3, 2, 5, 4, 6], 1 - 6 * (0 + 1 + 1 + 1 + 1 + 0) / (6 * 35)),  # Spearman's formula, no ties
    ([1, 1, 2, 2, 3, 3], None),  # ties: the Pearson correlation of mean ranks
])
def test_rank_correlation(y, rho):
    from curio.claims.verdicts import rank_correlation

    x = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    value, p_greater, p_less = rank_correlation(x, y)
    if rho is None:  # mean ranks 1.5, 1.5, 3.5, 3.5, 5.5, 5.5 against 1..6
        ry, rx = [1.5, 1.5, 3.5, 3.5, 5.5, 5.5], [1, 2, 3, 4, 5, 6]
        mx, my = 3.5, 3.5
        rho = sum((a - mx) * (b - my) for a, b in zip(rx, ry)) / (
            sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry)) ** 0.5
    assert value == pytest.approx(rho)
    if rho == 1.0:  # only the identity order reaches rho = 1: p is about 1/720
        assert p_greater == pytest.approx(1 / 720, abs=0.0015) and p_less == pytest.approx(1.0)


def test_question_8_ranks_the_13_sft_objectives_of_the_fork_study():
    """The protocol's claim 8 is over the 13 SFT objectives (the base model is not one)."""
    from curio.claims.plan import BASE, BASELINES, PRESETS

    experiments = PRESETS["fork_full"].experiments
    assert len(set(experiments)) == 13 and BASE not in experiments
    assert {"ce", "curio", "curio_fixed", "curio_live", "entropy_small", "entropy_large", "dft"} | set(BASELINES) \
        == set(experiments)
