"""The claims study end to end at smoke size: real train.py / eval.py runs, probes and the report."""

import json
import subprocess
import sys

from curio.claims.plan import PRESETS, jobs
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

    # A hand-written discussion survives regeneration; finished jobs are not redone.
    report.write_text(text.replace("_No discussion yet._", "Kept by hand."))
    second = _study(tmp_path)
    assert second.returncode == 0, second.stderr[-2000:]
    assert second.stdout.count("already done") == len(jobs(PRESETS["smoke"], tmp_path / "study"))
    assert f"{KEEP_START}\nKept by hand.\n{KEEP_END}" in report.read_text()


def test_report_only_refuses_an_unfinished_study(tmp_path):
    result = _study(tmp_path, "--report-only")
    assert result.returncode == 1
    assert "base model is not evaluated yet" in result.stderr


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
    assert (tmp_path / "fork" / "results_fork" / "rl_curves.png").stat().st_size > 1000
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
