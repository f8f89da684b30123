"""The report's numbers that are not verdicts: the RL curves (mean over seeds, then smoothed)."""

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
