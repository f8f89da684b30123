"""The study runner's scheduling: chains of jobs run side by side, each job's steps once and in
order, a failure stops new chains, and one study folder is run by one process at a time. The steps
are replaced by recorders here; the smoke studies (test_study.py) run the real ones."""

import json
import threading
import time

import pytest

from curio.claims import runner
from curio.claims.plan import PRESETS, jobs
from curio.claims.runner import StepFailed, StudyBusy, chains, run_study, study_lock
from curio.evaluation.results import write_json_atomic

PRESET = PRESETS["fork_smoke"]  # base, ce, ce+rl, curio, curio+rl


class Recorder:
    """Stands in for train/evaluate/run_probe: writes what the runner checks for and logs
    (event, job name, time) with how many steps were running at once."""

    def __init__(self, fail: str | None = None):
        self.events: list[tuple[str, str]] = []
        self.running = 0
        self.most_at_once = 0
        self.fail = fail
        self.lock = threading.Lock()

    def _step(self, kind, job, write):
        with self.lock:
            self.events.append((f"start {kind}", job.name))
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        time.sleep(0.05)  # long enough for the other worker to start its own step
        with self.lock:
            self.running -= 1
            self.events.append((f"end {kind}", job.name))
        if job.name == self.fail:
            raise StepFailed(f"exit 1: {job.name}")
        write()

    @staticmethod
    def _json(path, content):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, content)

    def train(self, job, preset):
        def write():
            job.model_dir.mkdir(parents=True, exist_ok=True)
            (job.model_dir / "config.json").write_text("{}")
            (job.model_dir / "model.safetensors").write_text("")
        self._step("train", job, write)

    def evaluate(self, job, preset):
        benchmarks = {name: {} for name in job.world.benchmarks}
        self._step("eval", job, lambda: self._json(job.eval_dir / "results.json",
                                                          {"finished": "now", "benchmarks": benchmarks}))

    def probe(self, job, preset):
        self._step("probe", job, lambda: self._json(job.probe_file, {}))


@pytest.fixture
def recorder(monkeypatch):
    def install(**kwargs):
        rec = Recorder(**kwargs)
        monkeypatch.setattr(runner, "train", rec.train)
        monkeypatch.setattr(runner, "evaluate", rec.evaluate)
        monkeypatch.setattr(runner, "run_probe", rec.probe)
        return rec
    return install


def test_chains_keep_each_rl_job_after_its_sft_model():
    todo = jobs(PRESETS["fork_full"], PRESETS["fork_full"].world.base_model)
    grouped = chains(todo)
    assert [job.name for job in grouped[0]] == ["base/seed0"]
    assert len(grouped) == 1 + len(PRESETS["fork_full"].experiments) * len(PRESETS["fork_full"].seeds)
    for chain in grouped[1:]:
        assert [job.stage for job in chain] == ["sft", "rl"]
        assert chain[1].sft == chain[0]
    assert [job for chain in grouped for job in chain] == todo


@pytest.mark.parametrize("workers", [1, 2])
def test_every_step_runs_once_in_order_and_side_by_side(tmp_path, recorder, workers):
    rec = recorder()
    todo = run_study(PRESET, tmp_path, workers)
    names = [job.name for job in todo if job.experiment != "base"]
    for name in names:  # each step of each job exactly once, in order
        kinds = [event for event, job in rec.events if job == name and event.startswith("start")]
        assert kinds == ["start train", "start eval", "start probe"]
    for experiment in PRESET.experiments:  # GRPO starts once its SFT model is done
        sft_done = rec.events.index(("end probe", f"{experiment}/seed0"))
        assert rec.events.index(("start train", f"{experiment}+rl/seed0")) > sft_done
    assert rec.most_at_once == workers
    timings = json.loads((tmp_path / "timings.json").read_text())  # no entry lost to a race
    assert set(timings) == {job.name for job in todo}
    assert all(set(steps) == {"train", "eval", "probe"} for name, steps in timings.items() if name in names)

    # Rerun: nothing left to do.
    rec.events.clear()
    run_study(PRESET, tmp_path, workers)
    assert rec.events == []


def test_a_failed_step_stops_new_chains_and_is_raised(tmp_path, recorder):
    rec = recorder(fail="base/seed0")  # the first chain fails at its evaluation
    with pytest.raises(StepFailed, match="base/seed0"):
        run_study(PRESET, tmp_path, workers=2)
    started = {job for event, job in rec.events if event.startswith("start")}
    # The second worker's chain (ce, then ce+rl) runs to its end; no chain starts after the failure.
    assert "ce+rl/seed0" in started
    assert not any(name.startswith("curio") for name in started)


def test_one_process_per_study_folder(tmp_path):
    with study_lock(tmp_path):
        with pytest.raises(StudyBusy, match="another `python -m curio.claims` is running"):
            with study_lock(tmp_path):
                pass
    with study_lock(tmp_path):  # released when the holder is done
        pass


def test_workers_must_be_positive(capsys):
    from curio.claims.__main__ import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--preset", "fork_smoke", "--workers", "0"])
    assert exit_info.value.code == 2
    assert "--workers 0: must be at least 1" in capsys.readouterr().err
