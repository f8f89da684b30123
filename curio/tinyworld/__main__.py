"""Command line.

``python -m curio.tinyworld build --out assets/tiny_world [--seed 0] [--pretrain-size N] ...``
``python -m curio.tinyworld entropy --model <HF folder> [--split sft_val] [--limit 200]``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from curio.tinyworld.build import BuildConfig, build
from curio.tinyworld.corpus import CorpusConfig


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and run the requested command."""
    parser = argparse.ArgumentParser(prog="python -m curio.tinyworld", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build_parser = commands.add_parser("build", help="regenerate the data splits and the tokenizer")
    build_parser.add_argument("--out", type=Path, default=Path("assets/tiny_world"))
    # One option per corpus knob (--seed, --pretrain-size, --flawed-share, ...), defaults from the config.
    for knob in dataclasses.fields(CorpusConfig):
        build_parser.add_argument(f"--{knob.name.replace('_', '-')}", type=type(knob.default), default=knob.default)
    entropy_parser = commands.add_parser("entropy", help="token entropy at choice points vs determined tokens")
    entropy_parser.add_argument("--model", type=Path, required=True, help="a Hugging Face model folder")
    entropy_parser.add_argument("--data", type=Path, default=Path("assets/tiny_world"))
    entropy_parser.add_argument("--split", default="sft_val")
    entropy_parser.add_argument("--limit", type=int, default=200)
    args = parser.parse_args(argv)
    if args.command == "entropy":
        print(json.dumps(_entropy(args), indent=2))
        return

    started = time.perf_counter()
    corpus = CorpusConfig(**{knob.name: getattr(args, knob.name) for knob in dataclasses.fields(CorpusConfig)})
    manifest = build(args.out, BuildConfig(corpus=corpus))
    summary = {
        name: {key: stats[key] for key in ("rows", "mean_response_tokens") if key in stats}
        for name, stats in manifest["splits"].items()
    }
    print(json.dumps(summary))
    print(f"wrote {args.out} in {time.perf_counter() - started:.1f}s")


def _entropy(args: argparse.Namespace) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from curio.tinyworld.corpus import read_jsonl
    from curio.tinyworld.entropy_probe import label_entropies

    rows = list(read_jsonl(args.data / f"{args.split}.jsonl"))[: args.limit]
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model)
    return {"model": str(args.model), "split": args.split, "rows": len(rows), **label_entropies(model, tokenizer, rows)}


if __name__ == "__main__":
    main()
