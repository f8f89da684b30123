"""The CurioSFT teacher's statistics (entropy, tau rule, log q) on logits of three kinds.

    python -m bench.teacher_stats [--reps 9] [--name teacher_stats]

The step benchmark's models have random weights, whose logits are nearly flat: every token's tau
is clamped at tau_max and the bisection never runs, while real reasoning traces are mostly
near-deterministic tokens, which the gate skips. This times ``CurioLoss.teacher_stats`` (the
work the lagged entropy-guided step adds after the teacher's forward pass, the sync aside) on one
chunk of float32 logits at the shapes of the ``cpu_smollm2`` and ``cpu_scaled`` presets, for:

- ``flat``: ``N(0, 0.05^2)`` logits, as from a random-weight model (every token at tau_max);
- ``spread``: ``N(0, 3^2)`` logits: every token interior, the full bisection (the worst case);
- ``traces``: 60% near-deterministic rows (entropy below the 0.03 gate) and 40% ``spread`` rows,
  the proportions of real chains of thought ("over half of the tokens have near-zero entropy",
  Wang et al. 2025, arXiv 2506.01939).

Each part is timed alone and in the loss's order, median of ``--reps``, one thread, under the
training step's CPU allocator; the share is of the preset's ``ce`` step as measured by
``python -m bench.run --preset <preset> --only steps,teacher`` (``bench/results/<preset>_teacher_parts.json``).
Writes ``bench/results/<name>.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from bench.run import ROOT, machine, write_results
from curio.cpu_allocator import keep_freed_memory

#: preset -> (loss tokens per step, vocabulary), as the step benchmark runs them.
SHAPES = {"cpu_smollm2": (448, 49_152), "cpu_scaled": (960, 18_992)}
KINDS = ("flat", "spread", "traces")


def logits(kind: str, n: int, vocab: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if kind == "flat":
        return torch.randn(n, vocab, generator=g) * 0.05
    z = torch.randn(n, vocab, generator=g) * 3
    if kind == "traces":
        certain = torch.arange(n) < int(0.6 * n)
        z[certain, 0] += 40  # one token holds nearly all the mass: entropy ~1e-12 nats
    return z


def time_parts(z: torch.Tensor, reps: int) -> dict[str, Any]:
    from curio.losses.base import TeacherChunk
    from curio.losses.curio import CurioLoss
    from curio.ops import entropy, target_logprob_at
    from curio.temperature import EntropyGuidedTemperature

    rule = EntropyGuidedTemperature()
    loss = CurioLoss(rule)
    targets = torch.randint(0, z.shape[1], (z.shape[0],), generator=torch.Generator().manual_seed(1))
    h = entropy(z)
    temp = rule(z, h)
    parts = {
        "full-vocabulary entropy": lambda: entropy(z),
        "tau rule (top-K, bisection, gate)": lambda: rule(z, h),
        "log q": lambda: target_logprob_at(z, targets, temp.tau),
        "all (CurioLoss.teacher_stats)": lambda: loss.teacher_stats(TeacherChunk(z), targets),
    }
    times: dict[str, list[float]] = {name: [] for name in parts}
    with torch.no_grad():
        for _ in range(reps):
            for name, fn in parts.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    return {
        "median_ms": {name: 1000 * statistics.median(t) for name, t in times.items()},
        "gated": temp.gated.float().mean().item(),
        "at_max": temp.at_max.float().mean().item(),
        "interior": (~(temp.gated | temp.at_min | temp.at_max)).float().mean().item(),
    }


def ce_step_ms(preset: str) -> float | None:
    path = ROOT / "bench" / "results" / f"{preset}_teacher_parts.json"
    if not path.is_file():
        return None
    steps = json.loads(path.read_text())["results"].get("steps") or {}
    return 1000 * steps["ce"]["median_step_s"] if "ce" in steps else None


def report(info: dict[str, Any], command: str, results: dict[str, Any], reps: int) -> str:
    lines = [
        "# curio benchmarks: the CurioSFT teacher's statistics on three kinds of logits", "",
        f"- command: `{command}`",
        f"- commit: `{info['commit']}`{' (with uncommitted changes)' if info['dirty'] else ''}; {info['date']}",
        f"- machine: {info['cpu']}, {info['cpu_cores_usable']} usable cores; torch threads: 1, no GPU",
        f"- float32 logits, one chunk; median of {reps} repetitions; share of the preset's `ce` step from"
        " `bench/results/<preset>_teacher_parts.json`", "",
        "| preset (tokens x vocabulary) | logits | gated / interior / at tau_max | entropy (ms) | tau rule (ms) |"
        " log q (ms) | all (ms) | all / ce step |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for preset, per_kind in results["presets"].items():
        n, vocab = SHAPES[preset]
        ce = per_kind["ce_step_ms"]
        for kind in KINDS:
            r = per_kind[kind]
            ms = r["median_ms"]
            share = f"{100 * ms['all (CurioLoss.teacher_stats)'] / ce:.1f}% of {ce:.0f} ms" if ce else "n/a"
            lines.append(
                f"| `{preset}` ({n} x {vocab:,}) | {kind} | {100 * r['gated']:.0f}% / {100 * r['interior']:.0f}%"
                f" / {100 * r['at_max']:.0f}% | {ms['full-vocabulary entropy']:.1f} |"
                f" {ms['tau rule (top-K, bisection, gate)']:.1f} | {ms['log q']:.1f} |"
                f" {ms['all (CurioLoss.teacher_stats)']:.1f} | {share} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--name", default="teacher_stats")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args(argv)
    command = "python -m bench.teacher_stats " + " ".join(argv if argv is not None else sys.argv[1:])
    torch.set_num_threads(1)
    keep_freed_memory()
    info = machine()
    t0 = time.perf_counter()
    results: dict[str, Any] = {"presets": {}}
    for preset, (n, vocab) in SHAPES.items():
        per_kind: dict[str, Any] = {"ce_step_ms": ce_step_ms(preset)}
        for kind in KINDS:
            print(f"{preset}: {kind} ...", flush=True)
            per_kind[kind] = time_parts(logits(kind, n, vocab), args.reps)
        results["presets"][preset] = per_kind
    results["total_wall_s"] = time.perf_counter() - t0
    write_results(Path(args.out), args.name, report(info, command.strip(), results, args.reps),
                  {"machine": info, "command": command, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
