"""Shared fixtures: one small corpus and a tokenizer trained on it, built once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from curio.tinyworld.corpus import CorpusConfig, Row, build_corpus
from curio.tinyworld.tokenizer import save_tokenizer, train_tokenizer

SMALL = CorpusConfig(
    seed=0, pretrain_size=400, flawed_share=0.15, sft_train_size=100, sft_val_size=20, test_id_size=60, test_ood_size=60
)


@pytest.fixture(scope="session")
def small_corpus() -> dict[str, list[Row]]:
    return build_corpus(SMALL)


@pytest.fixture(scope="session")
def tokenizer(small_corpus):
    return train_tokenizer(row["messages"] for row in small_corpus["sft_train"])


@pytest.fixture(scope="session")
def tokenizer_dir(tokenizer, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tokenizer")
    save_tokenizer(tokenizer, folder)
    return folder
