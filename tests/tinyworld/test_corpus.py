"""Corpus splits: determinism, disjointness and row schemas."""

from __future__ import annotations

import dataclasses

from curio.tinyworld.corpus import build_corpus
from curio.tinyworld.expr import count_ops, parse
from curio.tinyworld.prompts import SYSTEM_PROMPT
from curio.tinyworld.settings import ID, OOD

from .conftest import SMALL

TINY = dataclasses.replace(SMALL, pretrain_size=60, sft_train_size=20, sft_val_size=5, test_id_size=10, test_ood_size=10)


def test_same_seed_same_corpus_other_seed_other_corpus():
    assert build_corpus(TINY) == build_corpus(TINY)
    other = build_corpus(dataclasses.replace(TINY, seed=1))
    assert other["pretrain"] != build_corpus(TINY)["pretrain"]


def test_split_sizes(small_corpus):
    assert {name: len(rows) for name, rows in small_corpus.items()} == {
        "test_id": SMALL.test_id_size,
        "test_ood": SMALL.test_ood_size,
        "sft_val": SMALL.sft_val_size,
        "sft_train": SMALL.sft_train_size,
        "pretrain": SMALL.pretrain_size,
    }


def test_problems_are_disjoint_across_splits(small_corpus):
    problems = [row["problem"] for rows in small_corpus.values() for row in rows]
    assert len(problems) == len(set(problems))


def test_id_and_ood_sizes(small_corpus):
    for name, setting in (("test_id", ID), ("test_ood", OOD), ("pretrain", ID), ("sft_train", ID)):
        assert all(setting.min_ops <= count_ops(parse(row["problem"])) <= setting.max_ops for row in small_corpus[name])


def test_chat_row_schema(small_corpus):
    row = small_corpus["sft_train"][0]
    assert list(row) == ["messages", "choice_spans", "result_spans", "answer", "problem", "flawed"]
    assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
    assert row["messages"][0]["content"] == SYSTEM_PROMPT
    assert row["problem"] in row["messages"][1]["content"]
    response = row["messages"][2]["content"]
    assert all(0 <= start < end <= len(response) for start, end in row["choice_spans"] + row["result_spans"])
    assert all(response[start:end].isdigit() for start, end in row["result_spans"])


def test_test_row_schema(small_corpus):
    row = small_corpus["test_ood"][0]
    assert list(row) == ["problem", "answer", "messages", "n_ops"]
    assert [m["role"] for m in row["messages"]] == ["system", "user"]
    assert row["n_ops"] == count_ops(parse(row["problem"]))


def test_read_jsonl_takes_files_saved_by_any_editor(tmp_path):
    from curio.tinyworld.corpus import read_jsonl

    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\r\n\r\n{"a": 2}\r\n')
    assert list(read_jsonl(path)) == [{"a": 1}, {"a": 2}]
