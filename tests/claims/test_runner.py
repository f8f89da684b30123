"""The study runner's scheduling: chains of jobs run side by side, each job's steps once and in
order, a failure stops new chains, one study folder is run by one process at a time, and a study
continues from its records alone on a new machine. The steps are replaced by recorders here; the
smoke studies (test_study.py) run the real ones."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from curio.atomic_write import write_json_atomic
from curio.claims import records, runner
from curio.claims.plan import PRESETS, jobs
from curio.claims.records import BadRecord, read_record, record_file
from curio.claims.report import retrained_differently
from curio.claims.runner import StepFailed, StudyBusy, chains, run_study, study_lock
from curio.config import ROOT

PRESET = PRESETS["fork_smoke"]  # base, ce, ce+rl, curio, curio+rl


class Recorder:
    """Stands in for train/evaluate/run_probe: writes what the runner checks for and logs
    (event, job name, time) with how many steps were running at once."""

    def __init__(self, fail: str | None = None, hold: str | None = None):
        self.events: list[tuple[str, str]] = []
        self.hold = hold  # this job's steps wait until the failing step has failed
        self.failed = threading.Event()
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
        if job.name == self.hold:
            assert self.failed.wait(timeout=60)
            time.sleep(0.3)  # for the runner to record the failure
        with self.lock:
            self.running -= 1
            self.events.append((f"end {kind}", job.name))
        if job.name == self.fail:
            self.failed.set()
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
            (job.model_dir / "model.safetensors").write_text(self.weights)
        self._step("train", job, write)

    weights = ""  # what every trained model's weights file holds

    @staticmethod
    def record(job, preset, steps, commits):
        """A record with every field the runner checks, and the weight digests that the real one
        (records.make_record) takes the same way; the real measures are tested in test_study.py."""
        record = {"version": records.VERSION, "model": job.name, **records._settings(preset), "commits": commits,
                  "machine": "test", "steps": steps, "measures": {}, "tau_histograms": {}}
        if job.experiment != "base":
            record["weights_sha256"] = records.weights_digest(job.model_dir)
        if job.stage == "rl":
            record["sft_weights_sha256"] = records.weights_digest(job.sft.model_dir)
            record["rl_curves"] = {}
        return record

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
        monkeypatch.setattr(runner, "make_record", rec.record)
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
    todo = run_study(PRESET, tmp_path, tmp_path / "records", workers)
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

    assert all(read_record(tmp_path / "records", job, PRESET)["steps"] == timings[job.name] for job in todo)

    # Rerun: nothing left to do.
    rec.events.clear()
    run_study(PRESET, tmp_path, tmp_path / "records", workers)
    assert rec.events == []


def _new_machine(tmp_path, study):
    """Only the committed records survive: the study folder (models, samples, logs) is gone."""
    for name in ("train", "rl", "eval", "probe"):
        shutil.rmtree(study / name, ignore_errors=True)
    (study / "timings.json").unlink()


def test_a_new_machine_continues_from_the_records(tmp_path, recorder, capsys):
    rec = recorder()
    study, kept = tmp_path / "study", tmp_path / "records"
    todo = run_study(PRESET, study, kept)
    ce_rl = next(job for job in todo if job.name == "ce+rl/seed0")
    record_file(kept, ce_rl).unlink()  # ce+rl was not finished when the last machine went
    _new_machine(tmp_path, study)
    rec.events.clear()
    run_study(PRESET, study, kept)
    # Every recorded model is trusted; ce+rl needs its SFT model, which is retrained first.
    assert [event for event in rec.events if event[0].startswith("start")] == [
        ("start train", "ce/seed0"), ("start train", "ce+rl/seed0"), ("start eval", "ce+rl/seed0"),
        ("start probe", "ce+rl/seed0")]
    redone = read_record(kept, ce_rl, PRESET)
    assert set(redone["steps"]) == {"retrain sft", "train", "eval", "probe"}
    assert "warning" not in capsys.readouterr().err  # the same weights as the recorded model
    assert retrained_differently({"ce": [read_record(kept, todo[1], PRESET)], "ce+rl": [redone]}) == []

    # Retrained weights that differ from the evaluated ones are said at once and in the report.
    record_file(kept, ce_rl).unlink()
    _new_machine(tmp_path, study)
    rec.weights = "other weights"
    run_study(PRESET, study, kept)
    assert "warning: ce/seed0 trained again for ce+rl/seed0 differs" in capsys.readouterr().err
    assert retrained_differently({"ce": [read_record(kept, todo[1], PRESET)],
                                  "ce+rl": [read_record(kept, ce_rl, PRESET)]}) == ["ce+rl/seed0"]


@pytest.mark.parametrize("corrupt, message", [
    (lambda path: path.write_text("{not json"), "not valid JSON"),
    (lambda path: path.write_text(json.dumps({"version": 99})), "not a version 1 study record"),
    (lambda path: path.write_text(path.read_text().replace('"samples": 2', '"samples": 64')),
     "made with samples=64, this study has samples=2"),
    (lambda path: path.write_text(path.read_text().replace('"ce/seed0"', '"curio/seed0"')),
     "is the record of 'curio/seed0', not of 'ce/seed0'"),
])
def test_a_bad_record_stops_the_study_before_any_step(tmp_path, recorder, corrupt, message):
    rec = recorder()
    run_study(PRESET, tmp_path, tmp_path / "records")
    path = tmp_path / "records" / "ce" / "seed0.json"
    corrupt(path)
    (tmp_path / "eval" / "curio+rl" / "seed0" / "results.json").unlink()  # work left to do
    record_file(tmp_path / "records", jobs(PRESET, tmp_path)[-1]).unlink()
    rec.events.clear()
    with pytest.raises(BadRecord, match=f"{path}: .*{message}"):
        run_study(PRESET, tmp_path, tmp_path / "records")
    assert rec.events == []


def test_a_failed_step_stops_the_study_after_the_running_jobs(tmp_path, recorder, capsys):
    # The two workers take the first two chains (base; ce then ce+rl); ce's training fails while
    # base's evaluation is running.
    rec = recorder(fail="ce/seed0", hold="base/seed0")
    with pytest.raises(StepFailed, match="ce/seed0"):
        run_study(PRESET, tmp_path, tmp_path / "records", workers=2)
    started = {job for event, job in rec.events if event.startswith("start")}
    assert ("end probe", "base/seed0") in rec.events  # the job running elsewhere finished
    assert "ce+rl/seed0" not in started  # not the failed chain's next job
    assert not any(name.startswith("curio") for name in started)  # nor another chain
    assert "ce/seed0: failed; no job starts after it (exit 1: ce/seed0)" in capsys.readouterr().err


@pytest.mark.parametrize("workers", [1, 2])
def test_an_error_outside_the_steps_stops_the_study_too(tmp_path, recorder, monkeypatch, workers):
    recorder()

    def broken(*args):
        raise RuntimeError("progress line broke")

    monkeypatch.setattr(runner, "_time_left", broken)
    with pytest.raises(RuntimeError, match="progress line broke"):
        run_study(PRESET, tmp_path, tmp_path / "records", workers)


def test_time_left_shares_the_chains_among_the_workers(tmp_path):
    study = jobs(PRESET, tmp_path)  # base, ce, ce+rl, curio, curio+rl
    timings = {"ce/seed0": {"train": 10.0, "eval": 20.0}, "ce+rl/seed0": {"train": 100.0, "eval": 50.0}}
    assert runner._time_left(timings, study, study[3:], workers=2) == 180.0  # one chain: no sharing
    assert runner._time_left(timings, study, study[2:], workers=1) == 330.0
    # ce+rl (150 s) beside the curio chain (180 s): the longer chain sets the end, not 330 / 2.
    assert runner._time_left(timings, study, study[2:], workers=2) == 180.0
    # Retraining an SFT model recorded on another machine is not part of an RL job's pace.
    timings["ce+rl/seed0"][runner.RETRAIN_SFT] = 40.0
    assert runner._time_left(timings, study, study[3:], workers=2) == 180.0


def test_timings_come_from_the_records_and_then_this_folder(tmp_path):
    study = jobs(PRESET, tmp_path)
    write_json_atomic(tmp_path / "timings.json", {"ce/seed0": {"train": 1.0}, "ce+rl/seed0": {"train": 2.0}})
    path = record_file(tmp_path / "records", study[1])
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"steps": {"train": 10.0, "eval": 20.0}}))
    assert runner.study_timings(tmp_path, tmp_path / "records", study) == {
        "ce/seed0": {"train": 10.0, "eval": 20.0}, "ce+rl/seed0": {"train": 2.0}}


def test_a_stage_finished_here_is_timed_by_this_folder_alone(tmp_path):
    """A study that moved to a machine of another speed: once a job of a stage is trained and
    evaluated here, the records' times of that stage (the other machine's) no longer count."""
    study = jobs(PRESET, tmp_path)  # base, ce, ce+rl, curio, curio+rl
    write_json_atomic(tmp_path / "timings.json", {"curio/seed0": {"train": 1.0, "eval": 2.0},
                                                  "curio+rl/seed0": {"train": 3.0}})
    for job, steps in ((study[1], {"train": 10.0, "eval": 20.0}), (study[2], {"train": 30.0, "eval": 40.0})):
        path = record_file(tmp_path / "records", job)
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"steps": steps}))
    assert runner.study_timings(tmp_path, tmp_path / "records", study) == {
        "curio/seed0": {"train": 1.0, "eval": 2.0},  # SFT: finished here, so this folder's pace only
        "ce+rl/seed0": {"train": 30.0, "eval": 40.0}, "curio+rl/seed0": {"train": 3.0}}  # RL: none yet


def test_one_process_per_study_folder(tmp_path):
    with study_lock(tmp_path):
        with pytest.raises(StudyBusy, match="another `python -m curio.claims`"):
            with study_lock(tmp_path):
                pass
    with study_lock(tmp_path):  # released when the holder is done
        pass


def test_the_command_line_takes_the_lock_and_report_only_does_not(tmp_path, capsys):
    from curio.claims.__main__ import main

    with study_lock(tmp_path):
        with pytest.raises(SystemExit) as exit_info:
            main(["--preset", "fork_smoke", "--dir", str(tmp_path)])
        assert exit_info.value.code == 1
        assert "is running the study in" in capsys.readouterr().err
        assert not (tmp_path / "commits.json").exists()  # refused before writing anything
        with pytest.raises(SystemExit):  # reading a running study is allowed
            main(["--preset", "fork_smoke", "--dir", str(tmp_path), "--report-only"])
        assert "the base model has no record in" in capsys.readouterr().err


SLEEPING_STUDY = """
import os, sys, time
from pathlib import Path
from curio.claims import runner
from curio.claims.__main__ import main

folder = Path(sys.argv[1])
on_sigterm = sys.argv[2] if len(sys.argv) > 2 else ""

def sleep(job, preset):  # a step that runs until it is stopped, leaving its pid behind
    runner._run([sys.executable, "-c", f"import os, signal, sys, time; {on_sigterm}"
                 f"open('{folder}/pid-' + str(os.getpid()), 'w'); time.sleep(300)"], folder / "steps.log")

runner.train = runner.evaluate = sleep
main(["--preset", "fork_smoke", "--dir", str(folder / "study"), "--workers", "2"])
"""

#: A step that takes 5 s to stop, as a training step saving its checkpoint does.
SLOW_TO_STOP = ("signal.signal(signal.SIGTERM, lambda *_: (open(f'{folder}/stopping-{os.getpid()}', 'w'), "
                "time.sleep(5), sys.exit(0))); ")


def _sleeping_study(folder: Path, *args: str) -> tuple[subprocess.Popen, list[int]]:
    """The study above, once both workers are in a step; and the steps' pids."""
    study = subprocess.Popen([sys.executable, "-c", SLEEPING_STUDY, str(folder), *args], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(pids := list(folder.glob("pid-*"))) < 2:
        assert time.monotonic() < deadline and study.poll() is None, study.communicate()
        time.sleep(0.2)
    return study, [int(pid.name.removeprefix("pid-")) for pid in pids]


def test_sigterm_stops_the_running_steps_of_every_worker(tmp_path):
    study, steps = _sleeping_study(tmp_path)
    study.terminate()
    _, err = study.communicate(timeout=60)
    assert study.returncode == 128 + signal.SIGTERM, err
    for pid in steps:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert "failed" not in err  # the stopped steps are not reported as failures


def _running(pid: int) -> bool:
    """The process exists and is not a zombie (an orphan may wait a while to be reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_steps_die_with_a_study_killed_by_sigkill_and_hold_its_lock_till_then(tmp_path):
    study, steps = _sleeping_study(tmp_path, f"folder = {str(tmp_path)!r}; " + SLOW_TO_STOP)
    study.kill()  # no handler runs: the kernel tells the steps
    study.communicate(timeout=60)
    deadline = time.monotonic() + 30
    while len(list(tmp_path.glob("stopping-*"))) < 2:  # both steps got SIGTERM and are saving
        assert time.monotonic() < deadline, "a step was not told that its study died"
        time.sleep(0.05)
    with pytest.raises(StudyBusy, match="a step of one that was killed"):
        with study_lock(tmp_path / "study"):
            pass
    while any(_running(pid) for pid in steps):
        assert time.monotonic() < deadline, "a step outlived its study"
        time.sleep(0.2)
    with study_lock(tmp_path / "study"):  # free once the last step has ended
        pass


def test_workers_must_be_positive(capsys):
    from curio.claims.__main__ import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--preset", "fork_smoke", "--workers", "0"])
    assert exit_info.value.code == 2
    assert "--workers 0: must be at least 1" in capsys.readouterr().err
