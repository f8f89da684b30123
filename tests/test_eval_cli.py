"""eval.py end to end on a tiny random model, offline: outputs, resume, defaults, one-line errors."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from curio.config import CONF_DIR, ROOT
from curio.errors import ConfigError
from curio.evaluation import eval_config
from curio.evaluation import run as eval_run
from curio.evaluation.eval_config import benchmark_config, model_shorthand, resolve_model
from curio.evaluation.generation import HFGenerator
from curio.evaluation.run import evaluate
from tests.evaluation.locations import SHARED_BENCHMARKS

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
OFFLINE = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


@pytest.fixture(scope="module")
def model_dir(tiny_model_dir) -> Path:
    return tiny_model_dir


@pytest.fixture(scope="module")
def assets(tiny_world_tests) -> Path:
    return tiny_world_tests


@pytest.fixture
def eval_cfg(compose_cfg, model_dir, assets):
    """``eval_cfg(run_dir, *extra)``: a small, fast eval config of the tiny model."""
    def make(run_dir: Path, *extra: str):
        return compose_cfg(
            [f"model.path={model_dir}", f"paths.assets_dir={assets}", "limit=4", "sampling.n=2",
             "sampling.max_new_tokens=8", "grading.num_workers=1", "generation.progress=false", *extra],
            run_dir, config_name="eval",
        )

    return make


def read_samples(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]


def test_eval_writes_results_samples_table_and_plot_then_resumes(eval_cfg, model_dir, tmp_path, monkeypatch):
    results = evaluate(eval_cfg(tmp_path))

    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk == json.loads(json.dumps(results))
    assert on_disk["model"] == str(model_dir) and on_disk["finished"]
    assert list(on_disk["benchmarks"]) == ["tiny_id", "tiny_ood"]  # the defaults: the tiny world
    assert set(on_disk["groups"]) == {"id", "ood"}
    assert on_disk["config"]["sampling"]["n"] == 2 and "model_load_s" in on_disk["timing"]
    tiny_id = on_disk["benchmarks"]["tiny_id"]
    assert tiny_id["problems"] == 4 and tiny_id["n"] == 2 and tiny_id["grading_errors"] == []
    for key in ("accuracy", "avg@2", "pass@1", "pass@2", "maj@2", "mean_length", "truncated_share",
                "token_entropy", "token_entropy_sampling"):
        assert key in tiny_id["metrics"], key
    assert tiny_id["timing"]["samples_per_s"] > 0

    samples = read_samples(tmp_path)
    assert len(samples) == 2 * 4 * 2
    assert {(s["benchmark"], s["problem"], s["sample"]) for s in samples} == {
        (b, p, k) for b in ("tiny_id", "tiny_ood") for p in range(4) for k in range(2)}
    for s in samples:
        assert 1 <= s["num_tokens"] <= 8 and s["prompt_tokens"] > 0 and s["entropy"] > 0
        assert s["num_tokens"] == 8 or not s["truncated"]
    # Each sample's prompt, as the model saw it, once per problem.
    prompts = [json.loads(line) for line in (tmp_path / "prompts.jsonl").read_text().splitlines()]
    assert [(p["benchmark"], p["problem"]) for p in prompts] == [(b, i) for b in ("tiny_id", "tiny_ood") for i in range(4)]
    by_problem = {(p["benchmark"], p["problem"]): p for p in prompts}
    for s in samples:
        prompt = by_problem[(s["benchmark"], s["problem"])]
        assert prompt["prompt_tokens"] == s["prompt_tokens"] and prompt["ground_truth"] == s["ground_truth"]
    assert "Compute 0+2." in prompts[0]["prompt"] and prompts[0]["prompt"].endswith("<|im_start|>assistant\n")
    assert (tmp_path / "pass_at_k.png").read_bytes()[:8] == PNG_SIGNATURE
    table = (tmp_path / "results.md").read_text()
    assert "| tiny_id | id | 2 | 4 |" in table and "mean (ood)" in table
    assert (tmp_path / "config_resolved.yaml").is_file()

    # Interrupted during tiny_ood: its entry never reached results.json, some of its samples did.
    partial = dict(on_disk, benchmarks={"tiny_id": tiny_id}, finished=None)
    (tmp_path / "results.json").write_text(json.dumps(partial))
    resumed = evaluate(eval_cfg(tmp_path, "resume=true"))
    assert resumed["benchmarks"]["tiny_id"] == tiny_id  # kept as it was, not re-run
    # Seeded per benchmark: the re-run gives the same numbers.
    assert resumed["benchmarks"]["tiny_ood"]["metrics"] == on_disk["benchmarks"]["tiny_ood"]["metrics"]
    assert sorted(map(json.dumps, read_samples(tmp_path))) == sorted(map(json.dumps, samples))
    assert [json.loads(line) for line in (tmp_path / "prompts.jsonl").read_text().splitlines()] == prompts

    # Nothing left to do: the model is not even loaded.
    monkeypatch.setattr(eval_run, "_load", lambda *a: pytest.fail("model loaded"))
    evaluate(eval_cfg(tmp_path, "resume=true"))

    with pytest.raises(ConfigError, match=r"sampling.n=2, this run has sampling.n=3"):
        evaluate(eval_cfg(tmp_path, "resume=true", "sampling.n=3"))


class _Killed(Exception):
    """Stands for the kill (a session's end, a SIGKILL) that stops a run between two batches."""


def test_a_run_killed_mid_benchmark_resumes_after_its_last_batch(eval_cfg, tmp_path, monkeypatch):
    """8 sequences per benchmark in batches of 3: killed at the 5th batch (tiny_ood's 2nd), the
    resumed run samples tiny_ood's last 2 batches only and writes what an uninterrupted run writes."""
    whole = evaluate(eval_cfg(tmp_path / "whole", "generation.batch_size=3"))
    real, calls, kill_at = HFGenerator._generate_batch, [], [5]

    def counted(self, *args):
        calls.append(1)
        if len(calls) in kill_at:
            raise _Killed
        return real(self, *args)

    monkeypatch.setattr(HFGenerator, "_generate_batch", counted)
    run_dir = tmp_path / "killed"
    with pytest.raises(_Killed):
        evaluate(eval_cfg(run_dir, "generation.batch_size=3"))
    assert list(json.loads((run_dir / "results.json").read_text())["benchmarks"]) == ["tiny_id"]
    assert len((run_dir / "partial" / "tiny_ood.jsonl").read_text().splitlines()) == 1 + 1

    calls.clear()
    kill_at.clear()
    resumed = evaluate(eval_cfg(run_dir, "generation.batch_size=3", "resume=true"))
    assert len(calls) == 2
    for name in ("tiny_id", "tiny_ood"):
        assert resumed["benchmarks"][name]["metrics"] == whole["benchmarks"][name]["metrics"]
    assert read_samples(run_dir) == read_samples(tmp_path / "whole")
    assert not list((run_dir / "partial").iterdir())  # each benchmark's batches went once it was recorded

    # A fresh run (no resume) in the same folder does not take up the batches a killed one left.
    calls.clear()
    kill_at.append(5)
    with pytest.raises(_Killed):
        evaluate(eval_cfg(run_dir, "generation.batch_size=3"))
    assert (run_dir / "partial" / "tiny_ood.jsonl").is_file()
    calls.clear()
    kill_at.clear()
    evaluate(eval_cfg(run_dir, "generation.batch_size=3"))
    assert len(calls) == 6


def test_prompts_over_the_context_are_counted_or_refused(eval_cfg, tmp_path, caplog):
    """model=tiny has 2048 positions: 4 prompts + 2100 new tokens cannot fit."""
    with caplog.at_level(logging.WARNING):
        evaluate(eval_cfg(tmp_path / "warn", "benchmarks=[tiny_id]", "sampling.max_new_tokens=2100", "sampling.n=1",
                          "limit=2", "sampling.stop=[x]"))
    assert "tiny_id: 2 of 2 prompts plus max_new_tokens=2100 exceed the model's context of 2048 tokens" in caplog.text
    with pytest.raises(ConfigError, match="exceed the model's context"):
        evaluate(eval_cfg(tmp_path / "error", "benchmarks=[tiny_id]", "sampling.max_new_tokens=2100",
                          "generation.context_overflow=error"))


def test_cli_runs_end_to_end_offline(model_dir, assets, tmp_path):
    benchmarks = ["tiny_id"] + (["math500"] if (SHARED_BENCHMARKS / "math500.parquet").is_file() else [])
    cmd = [sys.executable, "eval.py", f"model={model_dir}", f"paths.assets_dir={assets}",
           f"paths.benchmarks_dir={SHARED_BENCHMARKS}", f"benchmarks=[{','.join(benchmarks)}]", "limit=4",
           "sampling.n=2", "sampling.max_new_tokens=8", "grading.num_workers=1", f"hydra.run.dir={tmp_path}"]
    proc = subprocess.run(cmd, cwd=ROOT, env=OFFLINE, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert list(results["benchmarks"]) == benchmarks
    assert all(b["problems"] == 4 and b["n"] == 2 for b in results["benchmarks"].values())
    assert len(read_samples(tmp_path)) == len(benchmarks) * 4 * 2
    assert (tmp_path / "pass_at_k.png").is_file()
    assert "| tiny_id | id | 2 | 4 |" in proc.stdout + proc.stderr  # the table is printed


@pytest.mark.parametrize(("args", "message"), [
    (["model=/nonexistent/model"], "error: model=/nonexistent/model: no such folder"),
    (["benchmarks=[tiny_id,nope]"], "error: benchmarks: no such benchmark 'nope'; choose one of aime24,"),
    (["generation.chunk_samples=0"], "error: generation.chunk_samples=0: must be an integer >= 1"),
])
def test_cli_errors_are_one_line(model_dir, args, message):
    cmd = [sys.executable, "eval.py", f"model={model_dir}", *args]
    proc = subprocess.run(cmd, cwd=ROOT, env=OFFLINE, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith(message) and "\n" not in proc.stderr.strip()


def test_default_model_is_the_newest_training_export(tmp_path):
    runs = tmp_path / "train" / "runs"
    with pytest.raises(ConfigError, match=r"no trained model found .*train one with `python train.py`"):
        resolve_model(None, tmp_path)
    for name in ("2024-01-01_00-00-00", "2024-01-02_00-00-00"):
        (runs / name / "hf").mkdir(parents=True)
        (runs / name / "hf" / "config.json").write_text("{}")
        time.sleep(0.01)
    old = runs / "2024-01-02_00-00-00" / "hf"
    os.utime(old, (1, 1))  # newest by modification time, not by name
    assert resolve_model(None, tmp_path) == str(runs / "2024-01-01_00-00-00" / "hf")
    assert resolve_model("Qwen/Qwen2.5-Math-1.5B", tmp_path) == "Qwen/Qwen2.5-Math-1.5B"  # a hub id
    with pytest.raises(ConfigError, match="not a Hugging Face model folder"):
        resolve_model(str(tmp_path), tmp_path)


def test_model_shorthand_and_the_authors_preset(compose_cfg, tmp_path):
    assert model_shorthand("model=/a/b") == "model.path=/a/b"
    assert model_shorthand("model.dtype=bfloat16") == "model.dtype=bfloat16"
    cfg = compose_cfg(["eval=authors"], tmp_path, config_name="eval")
    assert list(cfg.benchmarks) == ["aime24", "aime25", "amc23", "math500", "minerva", "olympiadbench",
                                    "gpqa_diamond", "arc_c"]
    assert (cfg.sampling.n, cfg.sampling.temperature, cfg.sampling.top_p, cfg.sampling.max_new_tokens) == (
        8, 0.6, 1.0, 8192)
    groups = {name: OmegaConf.load(CONF_DIR / "benchmark" / f"{name}.yaml").group for name in cfg.benchmarks}
    assert [n for n, g in groups.items() if g == "ood"] == ["gpqa_diamond", "arc_c"]


def test_a_benchmark_file_may_override_sampling(compose_cfg, tmp_path):
    (tmp_path / "benchmark").mkdir()
    (tmp_path / "benchmark" / "mc.yaml").write_text(
        "_target_: curio.evaluation.loaders.load_jsonl_benchmark\npath: ${paths.assets_dir}/mc.jsonl\n"
        "name: mc\ngroup: ood\ngrader: choice\nlimit: null\nsampling:\n  n: 1\n")
    cfg = compose_cfg(["limit=3", f"paths.assets_dir={tmp_path}"], tmp_path, config_name="eval")
    loader, sampling = benchmark_config(cfg, "mc", conf_dir=tmp_path)
    assert sampling == {"n": 1} and "sampling" not in loader
    assert loader["path"] == f"{tmp_path}/mc.jsonl" and loader["limit"] == 3
    assert eval_config.sampling_params(cfg, sampling).n == 1
