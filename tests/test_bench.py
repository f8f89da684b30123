"""The benchmark harness's arithmetic: pooled rounds, FLOPs per token, presets (no timing here);
and one smallest run of the side-by-side study benchmark and of the sampler benchmark, whose
numbers are not checked."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bench.run import flops_per_token, load_preset, merge_rounds, summarize_steps
from curio.models import build_causal_lm


def _raw(times, peak, baseline):
    return {"times": times, "cpu_times": [t / 2 for t in times], "tokens": [10] * len(times),
            "peak_bytes": peak, "baseline_bytes": baseline, "kind": "rss"}


def test_merge_rounds_drops_each_warmup_and_keeps_the_highest_peak():
    merged = merge_rounds([_raw([9.0, 1.0, 2.0], 100, 40), _raw([8.0, 3.0, 4.0], 150, 60)], warmup=1)
    assert merged["times"] == [1.0, 2.0, 3.0, 4.0]
    assert merged["cpu_times"] == [0.5, 1.0, 1.5, 2.0]
    assert (merged["peak_bytes"], merged["baseline_bytes"]) == (150, 60)
    summary = summarize_steps(merged, 0)
    assert summary["steps_measured"] == 4
    assert summary["median_step_s"] == 2.5
    assert summary["tokens_per_s"] == pytest.approx(40 / 10.0)
    assert summary["peak_above_start_bytes"] == 90


@pytest.mark.parametrize("preset", ["cpu", "cpu_scaled", "gpu"])
def test_flops_per_token_counts_every_matmul_weight(preset):
    """6 N + 12 L H S, with N counted independently: every Linear weight of the real model
    (built on the meta device, so even the 1.5B shape costs nothing), the output layer included."""
    config = load_preset(preset, [])
    with torch.device("meta"):
        model = build_causal_lm(config["model"], dtype="float32")
    n = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
    m = config["model"]
    attention = 12 * m["num_hidden_layers"] * m["hidden_size"] * config["seq_len"]
    assert flops_per_token(m, config["seq_len"]) == 6 * n + attention


def test_scaled_preset_keeps_the_real_models_proportions():
    """cpu_scaled is the gpu preset with width, vocabulary and sequence divided by 8."""
    scaled, real = load_preset("cpu_scaled", []), load_preset("gpu", [])
    for key in ("vocab_size", "hidden_size", "intermediate_size"):
        assert scaled["model"][key] * 8 == real["model"][key]
    assert scaled["seq_len"] * 8 == real["seq_len"]
    for key in ("num_hidden_layers", "num_attention_heads", "num_key_value_heads", "tie_word_embeddings"):
        assert scaled["model"][key] == real["model"][key]
    ratio = flops_per_token(scaled["model"], scaled["seq_len"]) / flops_per_token(real["model"], real["seq_len"])
    assert ratio == pytest.approx(1 / 64, rel=0.02)


def test_packing_summary_counts_real_tokens_and_padding():
    from bench.packing import summarize

    raw = {"times": [5.0, 1.0, 3.0], "tokens": [0, 60, 90], "padded_tokens": [0, 100, 100], "peak_bytes": 7}
    s = summarize([raw, {**raw, "peak_bytes": 9}], warmup=1)
    assert s["steps_measured"] == 4 and s["median_step_s"] == 2.0
    assert s["tokens_per_s"] == pytest.approx(300 / 8.0)
    assert s["padding_share"] == pytest.approx(1 - 300 / 400) and s["peak_bytes"] == 9


def test_ragged_rows_are_long_tailed_within_their_bounds(tmp_path):
    import json

    from bench.workers import write_ragged_data

    spec = load_preset("cpu_packing", [])["datasets"]["ragged"]
    write_ragged_data(tmp_path / "rows.jsonl", spec)
    rows = [json.loads(line) for line in (tmp_path / "rows.jsonl").read_text().splitlines()]
    lengths = sorted(len(r["response"]) for r in rows)
    assert len(rows) == spec["rows"]
    assert spec["response_chars"]["min"] <= lengths[0] and lengths[-1] <= spec["response_chars"]["max"]
    assert lengths[len(lengths) // 2] < 0.5 * lengths[-1]  # ragged: the median far below the longest


def test_teacher_stats_logit_kinds_are_what_the_report_says():
    """flat: every token at tau_max; spread: mostly bisected; traces: 60% gated (small shapes)."""
    from bench.teacher_stats import logits, time_parts

    flat, spread, traces = (time_parts(logits(kind, 50, 5000), reps=1) for kind in ("flat", "spread", "traces"))
    assert flat["at_max"] == 1.0
    assert spread["interior"] > 0.7 and spread["gated"] == 0.0
    assert traces["gated"] == pytest.approx(0.6) and traces["interior"] > 0.2
    assert set(flat["median_ms"]) == {"full-vocabulary entropy", "tau rule (top-K, bisection, gate)", "log q",
                                      "all (CurioLoss.teacher_stats)"}


def test_study_workers_benchmark_runs_the_study_steps(capsys):
    """The side-by-side benchmark (docs/benchmarks.md) at its smallest: both of the study's steps
    run (a failed step exits with its error) and each gives a table row."""
    from bench.study_workers import main

    main(["--jobs", "1", "--eval-problems", "1", "--train-steps", "2"])
    rows = capsys.readouterr().out.strip().splitlines()
    assert rows[2].startswith("| `eval.py` (1 problems x 64 samples) |")
    assert rows[3].startswith("| `train.py` (2 steps) |") and rows[3].endswith("x |")


def test_sampler_benchmark_times_every_variant(capsys):
    from bench.sampler import main

    main(["--problems", "1", "--rollout-prompts", "1", "--repeats", "1"])
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + 3  # header, then eval ID, eval OOD, rollout
    assert all(row.count("x |") == 2 for row in table[1:])  # two speed-ups in every row
