"""Benchmark loaders: the authors' parquet format, JSONL, Hugging Face, Hydra configs, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from curio.evaluation import (
    Benchmark,
    BenchmarkError,
    Problem,
    load_hf_benchmark,
    load_jsonl_benchmark,
    load_parquet_benchmark,
)
from tests.evaluation.locations import REPO_ROOT, SHARED_BENCHMARKS

SYSTEM = {"role": "system", "content": "Think, then answer in \\boxed{}."}


def verl_row(question: str, truth: object) -> dict:
    return {
        "data_source": "toy",
        "prompt": [SYSTEM, {"role": "user", "content": question}],
        "ability": "math",
        "reward_model": {"ground_truth": truth, "style": "rule"},
        "extra_info": {"index": 0, "split": "test"},
    }


def write_parquet(path: Path, rows: list[dict]) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_parquet_loader_reads_the_verl_schema(tmp_path):
    path = write_parquet(
        tmp_path / "toy.parquet", [verl_row(f"What is {i}+{i}?", str(2 * i)) for i in range(5)]
    )
    bench = load_parquet_benchmark(path, name="toy", group="id", grader="math")
    assert (bench.name, bench.group, bench.grader, len(bench)) == ("toy", "id", "math", 5)
    assert bench.problems[3] == Problem(
        prompt=(SYSTEM, {"role": "user", "content": "What is 3+3?"}), ground_truth="6", index=3
    )
    assert len(load_parquet_benchmark(path, name="toy", group="id", limit=2)) == 2


def test_parquet_errors_name_file_row_and_field(tmp_path):
    rows = [verl_row("ok", "1"), verl_row("ok", "2")]
    rows[1]["reward_model"] = {"style": "rule"}  # parquet fills the hole with null
    path = write_parquet(tmp_path / "null.parquet", rows)
    with pytest.raises(
        BenchmarkError, match=r"null\.parquet: row 2: field 'reward_model\.ground_truth' is missing"
    ):
        load_parquet_benchmark(path, name="x", group="id")
    # A limit that stops before the bad row loads fine.
    assert len(load_parquet_benchmark(path, name="x", group="id", limit=1)) == 1

    rows = [{k: v for k, v in verl_row("ok", "1").items() if k != "reward_model"}]
    path = write_parquet(tmp_path / "nocolumn.parquet", rows)
    with pytest.raises(BenchmarkError, match=r"row 1: missing field 'reward_model\.ground_truth'"):
        load_parquet_benchmark(path, name="x", group="id")

    rows = [verl_row("ok", "1")]
    rows[0]["prompt"] = [{"role": "user", "content": None}]
    path = write_parquet(tmp_path / "prompt.parquet", rows)
    with pytest.raises(
        BenchmarkError, match=r"row 1: field 'prompt\[0\]\.content' must be a string"
    ):
        load_parquet_benchmark(path, name="x", group="id")

    path = write_parquet(
        tmp_path / "list.parquet", [verl_row("ok", "1") | {"reward_model": {"ground_truth": ["1"]}}]
    )
    with pytest.raises(
        BenchmarkError,
        match="row 1: field 'reward_model.ground_truth' must be a string or a number, got list",
    ):
        load_parquet_benchmark(path, name="x", group="id")


def test_parquet_rejects_empty_unreadable_and_missing_files(tmp_path):
    empty = tmp_path / "empty.parquet"
    pq.write_table(pa.Table.from_pylist([verl_row("q", "1")]).slice(0, 0), empty)
    with pytest.raises(BenchmarkError, match="empty.parquet: no problems"):
        load_parquet_benchmark(empty, name="x", group="id")
    junk = tmp_path / "junk.parquet"
    junk.write_text("not parquet")
    with pytest.raises(BenchmarkError, match="junk.parquet: not a readable parquet file"):
        load_parquet_benchmark(junk, name="x", group="id")
    with pytest.raises(BenchmarkError, match="not found"):
        load_parquet_benchmark(tmp_path / "absent.parquet", name="x", group="id")


def test_jsonl_loader_with_custom_fields_system_prompt_and_template(tmp_path):
    path = write_jsonl(
        tmp_path / "toy.jsonl",
        [
            json.dumps({"question": {"text": "Find $x$ if $x^{2}=4$."}, "solution": 2}),
            "",
            json.dumps(
                {"question": {"text": "Compute $\\frac{1}{2}+\\frac{1}{2}$."}, "solution": "1"}
            ),
        ],
    )
    bench = load_jsonl_benchmark(
        path,
        name="toy",
        group="ood",
        problem_field="question.text",
        answer_field="solution",
        system_prompt="Be brief.",
        user_template="{problem}\nPut the answer in \\boxed{}.",
    )
    assert len(bench) == 2
    assert bench.problems[0].ground_truth == "2"  # numbers become strings
    assert bench.problems[1].prompt == (
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": "Compute $\\frac{1}{2}+\\frac{1}{2}$.\nPut the answer in \\boxed{}.",
        },
    )
    plain = load_jsonl_benchmark(
        path,
        name="toy",
        group="id",
        problem_field="question.text",
        answer_field="solution",
        limit=1,
    )
    assert len(plain) == 1 and plain.problems[0].prompt == (
        {"role": "user", "content": "Find $x$ if $x^{2}=4$."},
    )


@pytest.mark.parametrize(
    "lines, message",
    [
        (
            ['{"problem": "p", "answer": "1"}', '{"problem": "p", "answer": '],
            r"bad.jsonl:2: invalid JSON",
        ),
        (['["problem", "answer"]'], r":1: expected a JSON object, got list"),
        (
            ['{"problem": "p", "answer": "1"}', '{"problem": "p"}'],
            r":2: missing field 'answer'",
        ),
        (['{"problem": "p", "answer": null}'], r":1: field 'answer' is missing \(null\)"),
        (
            ['{"problem": "p", "answer": true}'],
            r":1: field 'answer' must be a string or a number, got bool",
        ),
        (['{"problem": "p", "answer": "  "}'], r":1: field 'answer' is empty"),
        (['{"problem": 7, "answer": "1"}'], r":1: field 'problem' must be a non-empty string"),
        (["", "  "], r"bad.jsonl: no problems"),
    ],
)
def test_jsonl_errors_name_file_line_and_field(tmp_path, lines, message):
    path = write_jsonl(tmp_path / "bad.jsonl", lines)
    with pytest.raises(BenchmarkError, match=message):
        load_jsonl_benchmark(path, name="bad", group="id")


def test_empty_jsonl_file(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text("")
    with pytest.raises(BenchmarkError, match="no problems"):
        load_jsonl_benchmark(path, name="bad", group="id")


def test_invalid_benchmark_settings_are_rejected(tmp_path):
    path = write_jsonl(tmp_path / "ok.jsonl", ['{"problem": "p", "answer": "1"}'])
    with pytest.raises(ValueError, match="group"):
        load_jsonl_benchmark(path, name="x", group="train")
    with pytest.raises(ValueError, match="grader"):
        load_jsonl_benchmark(path, name="x", group="id", grader="essay")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="limit"):
        load_jsonl_benchmark(path, name="x", group="id", limit=0)
    with pytest.raises(ValueError, match="user_template"):
        load_jsonl_benchmark(path, name="x", group="id", user_template="no placeholder")


def test_hf_loader_fails_clearly_when_offline(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(
        BenchmarkError,
        match=r"could not load Hugging Face dataset 'curio-tests/no-such-set'.*split 'test'",
    ):
        load_hf_benchmark("curio-tests/no-such-set", name="x", group="id")


def test_a_benchmark_is_one_yaml_file(tmp_path):
    write_parquet(tmp_path / "aime24.parquet", [verl_row("q", "7")])
    cfg = OmegaConf.create(
        {
            "paths": {"benchmarks_dir": str(tmp_path)},
            "benchmark": OmegaConf.load(REPO_ROOT / "conf/benchmark/aime24.yaml"),
        }
    )
    bench = instantiate(cfg.benchmark)
    assert (
        isinstance(bench, Benchmark)
        and bench.name == "aime24"
        and bench.problems[0].ground_truth == "7"
    )


EXPECTED_SIZES = {
    "aime24": 30, "aime25": 30, "amc23": 83, "math500": 500, "minerva": 272,
    "olympiadbench": 675, "gpqa_diamond": 198, "arc_c": 1172,
}  # fmt: skip


@pytest.mark.skipif(not SHARED_BENCHMARKS.is_dir(), reason=f"{SHARED_BENCHMARKS} not present")
@pytest.mark.parametrize("name", sorted(EXPECTED_SIZES))
def test_shared_benchmark_configs_instantiate(name):
    cfg = OmegaConf.create(
        {
            "paths": {"benchmarks_dir": str(SHARED_BENCHMARKS)},
            "benchmark": OmegaConf.load(REPO_ROOT / f"conf/benchmark/{name}.yaml"),
        }
    )
    bench = instantiate(cfg.benchmark)
    assert bench.name == name and len(bench) == EXPECTED_SIZES[name]
    assert bench.group == ("ood" if name in {"gpqa_diamond", "arc_c"} else "id")
    assert bench.grader == ("choice" if bench.group == "ood" else "math")


def test_a_jsonl_benchmark_saved_with_bom_and_crlf_loads(tmp_path):
    path = tmp_path / "win.jsonl"
    rows = [{"problem": "1+1?", "answer": "2"}, {"problem": "2+2?", "answer": "4"}]
    path.write_bytes(b"\xef\xbb\xbf" + b"\r\n\r\n".join(json.dumps(r).encode() for r in rows) + b"\r\n")
    bench = load_jsonl_benchmark(path, name="win", group="id")
    assert [p.ground_truth for p in bench.problems] == ["2", "4"]
