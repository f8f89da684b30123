"""The claims study end to end at smoke size: real train.py / eval.py runs, probes and the report."""

import json
import shutil
import subprocess
import sys

from curio.claims.plan import PRESETS, jobs
from curio.machine import cpu_model
from curio.claims.report import KEEP_END, KEEP_START
from curio.config import ROOT


def _study(tmp_path, *extra):
    return subprocess.run(
        [sys.executable, "-m", "curio.claims", "--preset", "smoke", "--dir", str(tmp_path / "study"), *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )


def test_smoke_study_runs_resumes_and_keeps_the_discussion(tmp_path):
    first = _study(tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    report = tmp_path / "study" / "results_tiny.md"
    text = report.read_text()
    for number in range(1, 6):
        assert f"\n| {number} | " in text
    # One seed: no verdict can be more than inconclusive under the rule; the smoke preset trains
    # only ce and curio, so questions 2 and 5 (entropy bonus, fixed temperature) were not run.
    assert text.count("**inconclusive**") == 3
    assert text.count("**not run**") == 2
    for plot in ("pass_at_k.png", "entropy_by_label.png", "tau_by_label.png"):
        assert (tmp_path / "study" / "results_tiny" / plot).stat().st_size > 1000
    for job in jobs(PRESETS["smoke"], tmp_path / "study"):
        assert (job.eval_dir / "results.json").is_file() and job.probe_file.is_file()

    # A hand-written discussion survives regeneration; recorded jobs are not redone.
    report.write_text(text.replace("_No discussion yet._", "Kept by hand."))
    second = _study(tmp_path)
    assert second.returncode == 0, second.stderr[-2000:]
    assert second.stdout.count(": recorded") == len(jobs(PRESETS["smoke"], tmp_path / "study"))
    text = report.read_text()
    assert f"{KEEP_START}\nKept by hand.\n{KEEP_END}" in text

    # The records alone (what a study commits) rebuild the same report on a machine without the runs.
    records = tmp_path / "study" / "results_tiny" / "records"
    kept = tmp_path / "kept"
    shutil.copytree(records, kept)
    shutil.rmtree(tmp_path / "study")
    shutil.copytree(kept, records)
    (tmp_path / "study" / "results_tiny.md").write_text(text)
    third = _study(tmp_path, "--report-only")
    assert third.returncode == 0, third.stderr[-2000:]
    assert (tmp_path / "study" / "results_tiny.md").read_text() == text
    record = json.loads((records / "curio" / "seed0.json").read_text())
    assert record["model"] == "curio/seed0" and record["preset"] == "smoke" and len(record["weights_sha256"]) == 64
    assert 0 <= record["measures"]["id/avg"] <= 1 and record["measures"]["H/choice"] > 0
    # The processor is named: the same run trains other weights on another one (other kernels).
    assert f"CPU cores ({cpu_model()})" in record["machine"] and cpu_model() != "unknown processor"


def test_report_only_refuses_an_unfinished_study(tmp_path):
    result = _study(tmp_path, "--report-only")
    assert result.returncode == 1
    assert "the base model has no record in" in result.stderr


def test_fork_world_smoke_study_runs_sft_then_grpo(tmp_path):
    """The fork world's study (docs/claims_v2_protocol.md) runs end to end with its own base, test
    sets and held-out demonstrations: every SFT model then a GRPO run from it, both evaluated and
    probed; the questions compare fork entropy, and 6-8 are answered (8 needs more objectives).
    Two models at a time, as the full study runs on 2 cores."""
    result = subprocess.run(
        [sys.executable, "-m", "curio.claims", "--preset", "fork_smoke", "--dir", str(tmp_path / "fork"),
         "--workers", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    text = (tmp_path / "fork" / "results_fork.md").read_text()
    assert text.startswith("# The paper's claims on the fork world")
    assert "Vanilla SFT lowers entropy at forks relative to the base model." in text
    assert "`assets/fork_world/base`" in text and "forks: wording" in text
    assert "\n| 6 | CurioSFT → GRPO beats SFT → GRPO" in text and "\n| 7 | " in text
    assert "\n| 8 | " in text and text.count("**not run**") == 3  # questions 2, 5 and 8
    assert "| CurioSFT (lagged, entropy-guided) → GRPO |" in text
    for plot in ("rl_curves.png", "entropy_vs_rl.png", "pass_at_k.png", "entropy_by_label.png"):
        assert (tmp_path / "fork" / "results_fork" / plot).stat().st_size > 1000
    assert "(results_fork/entropy_vs_rl.png)" in text
    assert "**The evaluation's own noise.**" in text
    assert "| at tau_min, determined |" in text.split("## The entropy-guided temperature")[1]
    training = text.split("## During training")[1].split("## Discussion")[0]
    assert "| CurioSFT (lagged, entropy-guided) |" in training and "→ GRPO" not in training  # SFT runs only
    preset = PRESETS["fork_smoke"]
    assert [job.key for job in jobs(preset, tmp_path / "fork")] == ["base", "ce", "ce+rl", "curio", "curio+rl"]
    rl_config = (tmp_path / "fork" / "rl" / "curio" / "seed0" / "config_resolved.yaml").read_text()
    assert str(tmp_path / "fork" / "train" / "curio" / "seed0" / "hf") in rl_config
    for job in jobs(preset, tmp_path / "fork"):
        results = (job.eval_dir / "results.json").read_text()
        assert '"fork_id"' in results and '"fork_ood"' in results
        probe = json.loads(job.probe_file.read_text())
        assert probe["labels"]["phrase"]["tokens"] > 0 and probe["labels"]["fork"]["tokens"] > 0
    config = (jobs(preset, tmp_path / "fork")[1].train_dir / "config_resolved.yaml").read_text()
    assert "fork_world/sft_train.jsonl" in config
    rl_record = json.loads((tmp_path / "fork" / "results_fork" / "records" / "curio+rl" / "seed0.json").read_text())
    assert len(rl_record["rl_curves"]["reward_mean"]) == 2  # two rollout steps
    sft_record = json.loads((tmp_path / "fork" / "results_fork" / "records" / "curio" / "seed0.json").read_text())
    assert rl_record["sft_weights_sha256"] == sft_record["weights_sha256"] != rl_record["weights_sha256"]


def test_time_left_is_the_median_pace_of_each_stage(tmp_path):
    """The progress line's estimate: each remaining job takes its stage's median finished job (a
    job slowed by other work on the machine moves it little); none before a stage has a finished job."""
    from curio.claims.runner import _time_left

    study = jobs(PRESETS["fork_full"], tmp_path)
    names = [job.name for job in study[:6]]
    assert names == ["base/seed0", "ce/seed0", "ce+rl/seed0", "ce/seed1", "ce+rl/seed1", "ce/seed2"]
    assert _time_left({}, study, study[6:]) is None  # no timings yet
    timings = {"base/seed0": {"eval": 1000.0, "probe": 2.0},
               "ce/seed0": {"train": 30.0, "eval": 500.0, "probe": 2.0},
               "ce+rl/seed0": {"train": 480.0, "eval": 580.0, "probe": 2.0},
               "ce/seed1": {"train": 25.0, "eval": 3900.0, "probe": 2.0},
               "ce+rl/seed1": {"train": 2300.0, "eval": 700.0, "probe": 2.0},
               "ce/seed2": {"train": 35.0, "eval": 600.0, "probe": 2.0}}
    remaining = study[6:]
    sft, rl = sum(job.stage == "sft" for job in remaining), sum(job.stage == "rl" for job in remaining)
    assert sft + rl == len(remaining) and rl == sft + 1  # ce+rl/seed2 is next
    # Medians: SFT jobs (532, 3927, 637) -> 637 s; RL jobs (1062, 3002) -> 2032 s.
    assert _time_left(timings, study, remaining) == sft * 637.0 + rl * 2032.0
    assert _time_left(timings, study, study[:0]) == 0.0


def test_the_committed_fork_study_records_read_as_its_records(tmp_path):
    """What the next session's study starts from: every committed record of the fork study is one
    of its jobs' (right model, preset settings, fields), and no file there is not a job's."""
    from curio.claims.records import read_record, record_file, records_dir

    preset = PRESETS["fork_full"]
    records = records_dir(ROOT / preset.world.report)
    study = jobs(preset, tmp_path)
    assert read_record(records, study[0], preset) is not None  # the base model's, recorded first
    for job in study:
        read_record(records, job, preset)  # raises BadRecord on a bad one
    expected = {record_file(records, job) for job in study}
    assert set(records.glob("**/*.json")) <= expected
