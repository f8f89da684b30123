"""Build the tiny-world assets: JSONL splits, tokenizer, manifest and README, all deterministic."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from curio.tinyworld.corpus import CorpusConfig, build_corpus, write_jsonl
from curio.tinyworld.readme import render_readme
from curio.tinyworld.stats import split_stats
from curio.tinyworld.tokenizer import save_tokenizer, train_tokenizer
from curio.tinyworld.worlds import WORLDS

TOKENIZER_DIR = "tokenizer"


@dataclass(frozen=True)
class BuildConfig:
    """Everything the assets depend on."""

    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    vocab_size: int = 512


def build(out: Path, config: BuildConfig) -> dict[str, Any]:
    """Write every asset under ``out`` (other files there are left alone) and return the manifest."""
    out.mkdir(parents=True, exist_ok=True)
    corpus = build_corpus(config.corpus)
    world = WORLDS[config.corpus.world]
    for name, rows in corpus.items():
        write_jsonl(out / f"{name}.jsonl", rows)
    tokenizer = train_tokenizer(
        (row["messages"] for name in world.tokenizer_splits for row in corpus[name]), config.vocab_size
    )
    save_tokenizer(tokenizer, out / TOKENIZER_DIR)
    manifest = {
        "config": asdict(config),
        "phrasing": asdict(world.phrasing),
        "settings": {setting.name: asdict(setting) for setting in (world.id, world.ood)},
        "tokenizer": {"dir": TOKENIZER_DIR, "vocab_size": len(tokenizer), "trained_on": list(world.tokenizer_splits)},
        "splits": {name: split_stats(rows, tokenizer) for name, rows in corpus.items()},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    (out / "README.md").write_text(render_readme(manifest, corpus, tokenizer), encoding="utf-8")
    return manifest
