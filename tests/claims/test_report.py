"""The report's numbers that are not verdicts (the RL curves: mean over seeds, then smoothed) and its verdict table."""

import csv

import pytest

from curio.claims.measures import rl_curve
from curio.claims.plan import PRESETS, jobs
from curio.claims.report import rl_mean_curve


def _log(job, rows):
    """An RL run's metrics.csv as Lightning's CSV logger writes it: rollout rows carry the reward,
    the rows between them (other optimizer steps) leave it empty."""
    path = job.train_dir / "csv" / "metrics.csv"
    path.parent.mkdir(parents=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["step", "train/reward_mean", "train/loss"])
        writer.writeheader()
        for step, reward in rows:
            writer.writerow({"step": step, "train/reward_mean": reward, "train/loss": 0.5})
            writer.writerow({"step": step + 1, "train/reward_mean": "", "train/loss": 0.4})


def test_rl_curve_is_the_seed_mean_at_shared_steps_then_a_trailing_average(tmp_path):
    runs = [job for job in jobs(PRESETS["fork_full"], tmp_path) if job.key == "ce+rl"]
    assert [job.seed for job in runs] == [0, 1, 2]
    _log(runs[0], [(1, 0.2), (3, 0.4), (5, 0.6), (7, 0.8)])
    _log(runs[1], [(1, 0.4), (3, 0.6), (5, 0.8), (7, 1.0)])
    _log(runs[2], [(1, 0.0), (3, 0.2), (5, 0.4)])  # a run stopped early: step 7 is not shared
    curves = [rl_curve(job.train_dir / "csv" / "metrics.csv", "reward_mean") for job in runs]
    assert curves[2] == [(1, 0.0), (3, 0.2), (5, 0.4)]  # the rollout rows only
    means = [0.2, 0.4, 0.6]  # steps 1, 3, 5
    curve = rl_mean_curve(curves, window=2)
    assert [step for step, _ in curve] == [1, 3, 5]
    assert [value for _, value in curve] == pytest.approx([means[0], (means[0] + means[1]) / 2,
                                                           (means[1] + means[2]) / 2])
    two = rl_mean_curve(curves[:2], window=1)  # both logged step 7
    assert [value for _, value in two] == pytest.approx([0.3, 0.5, 0.7, 0.9])
    assert rl_mean_curve([]) == []


def test_each_verdict_row_lists_its_evidence_without_an_empty_part():
    from curio.claims.report import _answers_section
    from curio.claims.verdicts import Answer, Part

    part = Part(what="fork entropy, SFT - base", a="ce", b="base", metric="H/fork", sign=-1,
                diffs=(-1.0, -1.1, -0.9), verdict="supports")
    rows = _answers_section([
        Answer(number=1, question="q1", verdict="supports", parts=(part,)),
        Answer(number=3, question="q3", verdict="inconclusive", parts=(part,), note="ID avg@n differs"),
        Answer(number=8, question="q8", verdict="contradicts", parts=(), note="rho = -0.54 over 13 objectives"),
    ], "fork world").splitlines()
    cells = {row.split(" | ")[0].strip("| "): row.split(" | ")[-1].rstrip(" |") for row in rows[2:]}
    assert cells["1"].startswith("fork entropy, SFT - base: ") and ";" not in cells["1"]
    assert cells["3"].endswith("); ID avg@n differs")
    assert cells["8"] == "rho = -0.54 over 13 objectives"  # a rank correlation: no paired parts before it
