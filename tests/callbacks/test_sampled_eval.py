"""The SampledEval callback: a tiny training run logs val/<benchmark>/ metrics every 2 steps."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from curio.callbacks.sampled_eval import SampledEval
from curio.train import train

QUIET = ["~callbacks.model_checkpoint", "~callbacks.hf_export", "~callbacks.token_plots", "data.val_size=0"]


def metric_rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "csv" / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def test_training_run_logs_sampled_validation_every_2_steps(tmp_path, monkeypatch, compose_cfg, fast,
                                                            tiny_world_tests):
    assets = tiny_world_tests
    seen: list[tuple[int, bool, bool]] = []
    evaluate = SampledEval.evaluate

    def spy(self, model, tokenizer, autocast=None):
        metrics = evaluate(self, model, tokenizer, autocast)
        seen.append((len(self.history) + 1, model.training, model.config.use_cache))
        return metrics

    monkeypatch.setattr(SampledEval, "evaluate", spy)
    cfg = compose_cfg(fast + QUIET + [
        "callbacks=with_sampled_eval", f"paths.assets_dir={assets}",
        "callbacks.sampled_eval.every_n_steps=2", "callbacks.sampled_eval.sampling.n=2",
        "callbacks.sampled_eval.sampling.max_new_tokens=8",
        "callbacks.sampled_eval.benchmarks.tiny_id.limit=3",
    ], tmp_path / "with")
    metrics = train(cfg)

    assert metrics["val/tiny_id/accuracy"] >= 0 and "val/tiny_id/pass@2" in metrics
    assert metrics["val/tiny_id/mean_length"] <= 8 and metrics["val/tiny_id/token_entropy"] > 0
    # Steps 2 and 4 (logged at Lightning's 0-based step of that optimizer step), train mode back after.
    rows = [r for r in metric_rows(tmp_path / "with") if r.get("val/tiny_id/accuracy")]
    assert [r["step"] for r in rows] == ["1", "3"]
    assert all(r["val/tiny_id/pass@1"] and r["val/tiny_id/token_entropy_sampling"] for r in rows)
    # The callback ran on a training model without the KV cache switched on for training.
    assert seen == [(1, True, False), (2, True, False)]

    # Sampling used its own RNG: the training losses are those of a run without the callback.
    train(compose_cfg(fast + QUIET, tmp_path / "without"))
    losses = [[r["train/loss"] for r in metric_rows(tmp_path / run) if r.get("train/loss")]
              for run in ("with", "without")]
    assert losses[0] == losses[1] and len(losses[0]) == 4


def test_every_n_steps_must_be_positive():
    with pytest.raises(ValueError, match="every_n_steps"):
        SampledEval(benchmarks=[object()], every_n_steps=0)
