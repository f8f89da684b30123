"""Command line: ``python -m curio.tinyworld build --out assets/tiny_world [--seed 0] [--pretrain-size N] ...``."""

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
    args = parser.parse_args(argv)

    started = time.perf_counter()
    corpus = CorpusConfig(**{knob.name: getattr(args, knob.name) for knob in dataclasses.fields(CorpusConfig)})
    manifest = build(args.out, BuildConfig(corpus=corpus))
    summary = {
        name: {key: stats[key] for key in ("rows", "mean_response_tokens") if key in stats}
        for name, stats in manifest["splits"].items()
    }
    print(json.dumps(summary))
    print(f"wrote {args.out} in {time.perf_counter() - started:.1f}s")


if __name__ == "__main__":
    main()
