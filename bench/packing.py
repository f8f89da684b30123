"""Packed vs padded batches: padding share, tokens per second and peak memory.

    python -m bench.packing [--preset cpu_packing] [--set KEY=VALUE ...] [--name NAME]

For each data set of the preset (``bench/config.yaml``), ``loss=ce`` trains with the default
length-bucketed padded batches, with padded batches in plain shuffled order, and with
``data.packing=true`` (one pack of at most the preset's ``pack_tokens`` per micro-batch), each in a
fresh process (``python -m bench.workers data``), in rounds whose order alternates.
Throughput counts real tokens only; the padding share is the batches' padding positions over all
positions. Writes ``bench/results/<name>.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench.run import ROOT, fmt_bytes, load_preset, machine, worker, write_results
from bench.workers import BATCHING


def summarize(raws: list[dict[str, Any]], warmup: int) -> dict[str, Any]:
    pooled = {k: [v for raw in raws for v in raw[k][warmup:]] for k in ("times", "tokens", "padded_tokens")}
    return {
        "median_step_s": statistics.median(pooled["times"]),
        "tokens_per_step": statistics.median(pooled["tokens"]),
        "tokens_per_s": sum(pooled["tokens"]) / sum(pooled["times"]),
        "padding_share": 1 - sum(pooled["tokens"]) / sum(pooled["padded_tokens"]),
        "peak_bytes": max(raw["peak_bytes"] for raw in raws),
        "steps_measured": len(pooled["times"]),
    }


def report(info: dict[str, Any], name: str, preset: dict[str, Any], command: str, results: dict[str, Any]) -> str:
    lines = [
        f"# curio benchmarks: packed vs padded batches, preset `{name}`", "",
        f"- command: `{command}`",
        f"- commit: `{info['commit']}`{' (with uncommitted changes)' if info['dirty'] else ''}; {info['date']}",
        f"- machine: {info['cpu']}, {info['cpu_cores_usable']} usable cores; torch threads: {preset['threads']},"
        + (f" GPU {info['gpu']}" if info["gpu"] else " no GPU"),
        f"- `loss=ce`, precision {preset['precision']}; {preset['warmup_steps']} warm-up + {preset['steps']} measured"
        f" optimizer steps per process, {preset['rounds']} rounds (alternating order), steps pooled",
        "",
        f"| data | batches | median step (s) | real tokens / step | tokens/s | padding share |"
        f" {'peak alloc' if preset['device'].startswith('cuda') else 'peak RSS'} | tokens/s / padded |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for dataset, pair in results["datasets"].items():
        padded = pair.get("padded")
        for variant, s in pair.items():
            if s is None:
                lines.append(f"| {dataset} | {variant} | failed | | | | | |")
                continue
            ratio = s["tokens_per_s"] / padded["tokens_per_s"] if padded else float("nan")
            lines.append(f"| {dataset} | {variant} | {s['median_step_s']:.3f} | {s['tokens_per_step']:.0f} |"
                         f" {s['tokens_per_s']:.0f} | {100 * s['padding_share']:.1f}% | {fmt_bytes(s['peak_bytes'])} |"
                         f" {ratio:.2f} |")
    lines += ["", "Data sets:", ""]
    for dataset, spec in preset["datasets"].items():
        lines.append(f"- `{dataset}`: {spec['about']}; padded: {spec['micro_batch_size']} rows per micro-batch;"
                     f" packed: one pack of at most {spec['pack_tokens']} tokens per micro-batch")
    lines += ["", "tokens/s counts real tokens only; the padding share is padding positions over all positions."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu_packing")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--name", default=None)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args(argv)
    preset = load_preset(args.preset, args.set)
    command = "python -m bench.packing " + " ".join(argv if argv is not None else sys.argv[1:])
    info = machine()
    t0 = time.perf_counter()
    jobs = [(dataset, variant) for dataset in preset["datasets"] for variant in BATCHING]
    raws: dict[tuple[str, str], list[dict[str, Any]]] = {job: [] for job in jobs}
    for r in range(preset["rounds"]):
        for dataset, variant in jobs if r % 2 == 0 else jobs[::-1]:
            print(f"{dataset}, {variant} (round {r + 1}/{preset['rounds']}) ...", flush=True)
            raw = worker("data", preset, "--dataset", dataset, "--batching", variant)
            if raw is not None:
                raws[(dataset, variant)].append(raw)
    results: dict[str, Any] = {"datasets": {}}
    for dataset, variant in jobs:
        ok = len(raws[(dataset, variant)]) == preset["rounds"]
        summary = summarize(raws[(dataset, variant)], preset["warmup_steps"]) if ok else None
        results["datasets"].setdefault(dataset, {})[variant] = summary
    results["total_wall_s"] = time.perf_counter() - t0
    write_results(Path(args.out), args.name or args.preset, report(info, args.preset, preset, command, results),
                  {"machine": info, "preset": preset, "command": command, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
