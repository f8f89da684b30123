"""Command line.

``python -m curio.tinyworld build [--world arith|forks] [--out assets/<its folder>] [--seed 0] [--pretrain-size N] ...``
``python -m curio.tinyworld entropy --model <HF folder> [--split sft_val] [--limit 200]``
``python -m curio.tinyworld profile --model <HF folder> --data assets/fork_world [--n 4] [--out file.json]``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from curio.tinyworld.build import BuildConfig, build
from curio.tinyworld.corpus import DEFAULT_CONFIGS, CorpusConfig
from curio.tinyworld.worlds import WORLDS


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and run the requested command."""
    parser = argparse.ArgumentParser(prog="python -m curio.tinyworld", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build_parser = commands.add_parser("build", help="regenerate the data splits and the tokenizer")
    build_parser.add_argument("--out", type=Path, default=None,
                              help="default: the world's shipped folder (assets/tiny_world, assets/fork_world)")
    # One option per corpus knob (--world, --seed, --pretrain-size, ...); unset ones keep the chosen
    # world's shipped config (DEFAULT_CONFIGS).
    for knob in dataclasses.fields(CorpusConfig):
        options = {"choices": sorted(DEFAULT_CONFIGS)} if knob.name == "world" else {}
        build_parser.add_argument(f"--{knob.name.replace('_', '-')}", type=type(knob.default), default=None, **options)
    entropy_parser = commands.add_parser("entropy", help="token entropy at choice points vs determined tokens")
    entropy_parser.add_argument("--model", type=Path, required=True, help="a Hugging Face model folder")
    entropy_parser.add_argument("--data", type=Path, default=Path("assets/tiny_world"))
    entropy_parser.add_argument("--split", default="sft_val")
    entropy_parser.add_argument("--limit", type=int, default=200)
    profile_parser = commands.add_parser(
        "profile", help="token entropy of the model's own samples at T = 1: median, 80th percentile, tail"
    )
    profile_parser.add_argument("--model", type=Path, required=True, help="a Hugging Face model folder")
    profile_parser.add_argument("--data", type=Path, default=Path("assets/tiny_world"))
    profile_parser.add_argument("--split", default="sft_val", help="whose prompts (held out from training)")
    profile_parser.add_argument("--limit", type=int, default=200)
    profile_parser.add_argument("--n", type=int, default=4, help="samples per prompt")
    profile_parser.add_argument("--seed", type=int, default=0)
    profile_parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    if args.command in ("entropy", "profile"):
        result = _entropy(args) if args.command == "entropy" else _profile(args)
        text = json.dumps(result, indent=2)
        print(text)
        if getattr(args, "out", None) is not None:
            args.out.write_text(text + "\n", encoding="utf-8")
        return

    started = time.perf_counter()
    given = {knob.name: getattr(args, knob.name) for knob in dataclasses.fields(CorpusConfig)}
    corpus = dataclasses.replace(
        DEFAULT_CONFIGS[given.pop("world") or "arith"], **{name: value for name, value in given.items() if value is not None}
    )
    out = args.out or Path("assets") / WORLDS[corpus.world].folder
    manifest = build(out, BuildConfig(corpus=corpus))
    summary = {
        name: {key: stats[key] for key in ("rows", "mean_response_tokens") if key in stats}
        for name, stats in manifest["splits"].items()
    }
    print(json.dumps(summary))
    print(f"wrote {out} in {time.perf_counter() - started:.1f}s")


def _load(args: argparse.Namespace) -> tuple[list, Any, Any]:
    """The first ``--limit`` rows of ``--split``, and the ``--model`` folder's tokenizer and model."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from curio.tinyworld.corpus import read_jsonl

    rows = list(read_jsonl(args.data / f"{args.split}.jsonl"))[: args.limit]
    return rows, AutoTokenizer.from_pretrained(args.model), AutoModelForCausalLM.from_pretrained(args.model)


def _entropy(args: argparse.Namespace) -> dict:
    from curio.tinyworld.entropy_probe import label_entropies

    rows, tokenizer, model = _load(args)
    return {"model": str(args.model), "split": args.split, "rows": len(rows), **label_entropies(model, tokenizer, rows)}


def _profile(args: argparse.Namespace) -> dict:
    from curio.evaluation.sampled import render_prompt
    from curio.tinyworld.entropy_profile import sampled_token_entropies, summarise
    from curio.tinyworld.grading import is_correct

    rows, tokenizer, model = _load(args)
    prompts = [render_prompt(tokenizer, row["messages"][:2]) for row in rows]
    values, texts = sampled_token_entropies(model, tokenizer, prompts, n=args.n, seed=args.seed)
    answers = [row["answer"] for row in rows for _ in range(args.n)]
    return {
        "model": str(args.model),
        "prompts": f"{args.split} (first {len(rows)})",
        "samples_per_prompt": args.n,
        "seed": args.seed,
        "accuracy_at_T1": sum(map(is_correct, texts, answers)) / len(texts),
        **summarise(values),
    }


if __name__ == "__main__":
    main()
