"""The build: every file written, byte-identical on a rerun, and the committed assets consistent."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from curio.tinyworld.__main__ import main
from curio.tinyworld.build import BuildConfig
from curio.tinyworld.corpus import read_jsonl
from curio.tinyworld.grading import is_correct
from curio.tinyworld.verify import verify_solution

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "tiny_world"
SPLITS = ("pretrain", "sft_train", "sft_val", "test_id", "test_ood")
TINY_ARGS = ["--pretrain-size", "80", "--sft-train-size", "30", "--sft-val-size", "5"]
TINY_ARGS += ["--test-id-size", "10", "--test-ood-size", "10"]


def _files(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_cli_build_is_byte_identical_on_rerun(tmp_path, capsys):
    main(["build", "--out", str(tmp_path / "a"), *TINY_ARGS])
    main(["build", "--out", str(tmp_path / "b"), *TINY_ARGS])
    first, second = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert first == second
    expected = {f"{name}.jsonl" for name in SPLITS} | {"manifest.json", "README.md"}
    assert expected | {"tokenizer/tokenizer.json", "tokenizer/tokenizer_config.json"} <= set(first)
    manifest = json.loads(first["manifest.json"])
    assert manifest["config"]["corpus"]["pretrain_size"] == 80
    assert manifest["splits"]["pretrain"]["flawed"] == round(0.15 * 80)
    assert "## Base model" in first["README.md"].decode()
    assert "wrote" in capsys.readouterr().out


@pytest.mark.skipif(not (ASSETS / "manifest.json").exists(), reason="assets/tiny_world not built")
def test_committed_assets_match_the_default_config():
    manifest = json.loads((ASSETS / "manifest.json").read_text())
    assert manifest["config"] == dataclasses.asdict(BuildConfig())
    for name in SPLITS:
        assert manifest["splits"][name]["rows"] == sum(1 for _ in read_jsonl(ASSETS / f"{name}.jsonl"))
    tokenizer = AutoTokenizer.from_pretrained(str(ASSETS / "tokenizer"))
    assert tokenizer.eos_token == "<|im_end|>" and len(tokenizer) == manifest["tokenizer"]["vocab_size"]
    for row in list(read_jsonl(ASSETS / "sft_train.jsonl"))[:50]:
        response = row["messages"][2]["content"]
        assert verify_solution(row["problem"], response) == [] and is_correct(response, row["answer"])

