"""Benchmark the training objectives: ``python -m bench.run [--preset cpu|cpu_scaled|gpu] [--set key=value ...]``.

Measures, each in its own process (so that peak memory is the measurement's own):

1. every loss (``ce``, ``entropy``, ``dft``, ``curio`` live, ``curio`` lagged + ``fixed``,
   ``curio`` lagged + ``entropy_guided``) trained through curio's own ``train()``: median
   optimizer-step time after warm-up, tokens/s, peak memory, MFU, and the ratios to ``ce``;
2. vanilla ``ce`` against TRL's ``SFTTrainer`` on the same model, tokens, batch, sequence length,
   precision and checkpointing (if ``trl`` is installed);
3. the chunked CurioSFT loss against a naive one holding the full float32 logits, at a
   151,936-token vocabulary: peak memory and time of one forward + backward.

Prints a markdown report and writes it, with the raw numbers as JSON, to
``bench/results/<name>.md`` and ``.json`` (``--name`` defaults to the preset).
Sizes live in ``bench/config.yaml``. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from curio.machine import cpu_model

ROOT = Path(__file__).resolve().parents[1]
CONFIG = Path(__file__).with_name("config.yaml")
LABELS = {
    "ce": "ce (vanilla SFT)",
    "entropy": "entropy (beta=0.01)",
    "dft": "dft",
    "curio_live": "curio, live teacher",
    "curio_lagged_fixed": "curio, lagged teacher, fixed tau",
    "curio_lagged_entropy_guided": "curio, lagged teacher, entropy-guided tau",
    "curio_lagged_entropy_guided_bf16_stats": "curio, lagged, entropy-guided, bf16 teacher statistics",
    "curio_lagged_entropy_guided_bf16_teacher": "curio, lagged, entropy-guided, bf16 teacher copy",
    "gem": "GEM (logsigmoid, beta=0.7)",
    "psft": "PSFT (snapshot every 8 steps)",
    "asft": "ASFT (DFT + 0.1 KL to the start model)",
    "sft_kl": "SFT + 0.1 KL to the start model",
    "eaft": "EAFT (top-20 entropy weight)",
    "sed": "SED-SFT (top-2 mass < 0.7)",
    "ce_lora16": "ce, LoRA rank 16",
    "curio_lagged_entropy_guided_lora16": "curio, lagged (second adapter), entropy-guided, LoRA rank 16",
}
GiB = 2**30


# ------------------------------------------------------------------------------------ config
def load_preset(name: str, sets: list[str]) -> dict[str, Any]:
    presets = yaml.safe_load(CONFIG.read_text())
    if name not in presets:
        raise SystemExit(f"--preset {name}: choose one of {', '.join(presets)}")
    preset = presets[name]
    for item in sets:
        key, _, value = item.partition("=")
        node = preset
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        if leaf not in node:
            raise SystemExit(f"--set {key}: no such key in preset {name}")
        node[leaf] = yaml.safe_load(value)
    return preset


# ----------------------------------------------------------------------------------- machine
def machine() -> dict[str, Any]:
    import lightning
    import torch
    import transformers

    info = {
        "cpu": cpu_model(),
        "cpu_cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "lightning": lightning.__version__,
        "python": platform.python_version(),
        "commit": _git("rev-parse", "--short", "HEAD"),
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    try:
        import trl

        info["trl"] = trl.__version__
    except ImportError:
        info["trl"] = None
    return info


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


# ----------------------------------------------------------------------------------- workers
def worker(kind: str, preset: dict[str, Any], *extra: str) -> dict[str, Any] | None:
    """Run one measurement in a fresh process; None (and the error tail) if it failed."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "bench.workers", kind, "--preset-json", json.dumps(preset), "--out", str(out), *extra]
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0 or not out.exists():
            print(f"  FAILED: {' '.join(extra) or kind}\n{proc.stderr[-3000:]}", file=sys.stderr)
            return None
        result = json.loads(out.read_text())
        result["wall_s"] = wall
        return result


def summarize_steps(raw: dict[str, Any], warmup: int) -> dict[str, Any]:
    times = raw["times"][warmup:]
    tokens = raw["tokens"][warmup:]
    median = statistics.median(times)
    return {
        "median_step_s": median,
        "median_step_cpu_s": statistics.median(raw["cpu_times"][warmup:]),
        "p10_step_s": _quantile(times, 0.1),
        "p90_step_s": _quantile(times, 0.9),
        "steps_measured": len(times),
        "tokens_per_step": statistics.median(tokens),
        "tokens_per_s": sum(tokens) / sum(times),
        "peak_bytes": raw["peak_bytes"],
        "peak_above_start_bytes": raw["peak_bytes"] - raw["baseline_bytes"],
        "memory_kind": raw["kind"],
    }


def merge_rounds(raws: list[dict[str, Any]], warmup: int) -> dict[str, Any]:
    """One raw record from several rounds of the same job: each round's warm-up steps dropped, the
    measured steps pooled, and the memory of the round that peaked highest."""
    peak = max(raws, key=lambda raw: raw["peak_bytes"])
    return {
        **{key: [v for raw in raws for v in raw[key][warmup:]] for key in ("times", "cpu_times", "tokens")},
        **{key: peak[key] for key in ("peak_bytes", "baseline_bytes", "kind")},
    }


def trl_available() -> bool:
    try:
        import trl  # noqa: F401
    except ImportError:
        return False
    return True


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def flops_per_token(model: dict[str, Any], seq_len: int) -> float:
    """Training FLOPs per token of the student, PaLM convention: 6 N + 12 L H S.

    N counts the matmul weights (attention and MLP of every layer, and the output layer; not the
    embedding lookup); 12 L H S is the attention score and value products, causal mask not
    discounted. Teacher passes, loss-chunk recomputation and activation checkpointing are not
    counted: they show up as a lower MFU.
    """
    h, layers, inter, vocab = model["hidden_size"], model["num_hidden_layers"], model["intermediate_size"], model["vocab_size"]
    heads, kv = model["num_attention_heads"], model.get("num_key_value_heads", model["num_attention_heads"])
    head_dim = h // heads
    per_layer = 2 * h * h + 2 * h * kv * head_dim + 3 * h * inter
    return 6 * (layers * per_layer + vocab * h) + 12 * layers * h * seq_len


# ------------------------------------------------------------------------------------ report
def fmt_bytes(n: float) -> str:
    return f"{n / GiB:.2f} GiB" if n >= GiB / 4 else f"{n / 2**20:.0f} MiB"


def report(info: dict[str, Any], preset_name: str, preset: dict[str, Any], command: str, results: dict[str, Any]) -> str:
    lines = [f"# curio benchmarks: preset `{preset_name}`", ""]
    lines += [
        f"- command: `{command}`",
        f"- commit: `{info['commit']}`{' (with uncommitted changes)' if info['dirty'] else ''}; {info['date']}",
        f"- machine: {info['cpu']}, {info['cpu_cores_usable']} usable cores; torch threads per measurement:"
        f" {preset.get('threads') or info['torch_threads']}"
        + (f", GPU {info['gpu']}" if info["gpu"] else ", no GPU"),
        f"- software: torch {info['torch']}, transformers {info['transformers']}, lightning {info['lightning']}"
        + (f", trl {info['trl']}" if info.get("trl") else ""),
    ]
    mm = results.get("matmul")
    if mm:
        lines.append(f"- measured matmul rate ({mm['dtype']}, n={mm['n']}, fastest of 10): {mm['flops_per_s'] / 1e12:.3f} TFLOP/s"
                     " (the MFU denominator)")
    m = preset["model"]
    lines += [
        f"- model: {m['model_type']}, {m['num_hidden_layers']} layers, hidden {m['hidden_size']}, vocab {m['vocab_size']},"
        f" random weights; {preset['micro_batch_size']} x {preset['seq_len']} tokens per step"
        f" ({preset['seq_len'] - preset['prompt_len']} supervised per sequence), precision {preset['precision']},"
        f" gradient checkpointing {'on' if preset['gradient_checkpointing'] else 'off'};"
        f" {preset['warmup_steps']} warm-up + {preset['steps']} measured optimizer steps"
        + (f" per process, {preset['rounds']} rounds (alternating order), steps pooled" if preset.get("rounds", 1) > 1 else ""),
    ]
    if preset["device"] == "cpu":
        lines.append("- CPU allocator: " + ("freed memory kept in the process (`cpu_keep_freed_memory`)"
                                            if preset["cpu_keep_freed_memory"] else "glibc's default"))
    lines.append("")
    steps = results.get("steps", {})
    if steps:
        ce = steps.get("ce")
        mem_col = "peak alloc" if preset["device"].startswith("cuda") else "peak RSS"
        lines += [
            "## Training step per loss",
            "",
            f"| loss | median step (s) | p10-p90 (s) | CPU time / step (s) | tokens/s | {mem_col} | above start | MFU"
            " | step / ce | CPU time / ce | tokens/s / ce | peak / ce |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, s in steps.items():
            if s is None:
                lines.append(f"| {LABELS.get(name, name)} | failed | | | | | | | | | | |")
                continue
            r = lambda key: f"{s[key] / ce[key]:.2f}" if ce else "-"  # noqa: E731
            mfu = f"{s['mfu'] * 100:.1f}%" if s.get("mfu") is not None else "-"
            lines.append(
                f"| {LABELS.get(name, name)} | {s['median_step_s']:.3f} | {s['p10_step_s']:.3f}-{s['p90_step_s']:.3f} |"
                f" {s['median_step_cpu_s']:.3f} | {s['tokens_per_s']:.0f} | {fmt_bytes(s['peak_bytes'])} |"
                f" {fmt_bytes(s['peak_above_start_bytes'])} | {mfu} | {r('median_step_s')} | {r('median_step_cpu_s')} |"
                f" {r('tokens_per_s')} | {r('peak_bytes')} |"
            )
        lines.append("")
    trl = results.get("trl")
    if trl is not None or results.get("trl_skipped"):
        lines += ["## Vanilla SFT: curio vs TRL SFTTrainer", ""]
        if results.get("trl_skipped"):
            lines += [f"Not run: {results['trl_skipped']}", ""]
        else:
            ce = steps.get("ce")
            lines += [
                "| trainer | median step (s) | CPU time / step (s) | tokens/s | peak | above start | MFU |",
                "|---|---:|---:|---:|---:|---:|---:|",
            ]
            for label, s in (("curio `loss=ce`", ce), ("TRL `SFTTrainer`", trl)):
                if s is None:
                    lines.append(f"| {label} | failed | | | | | |")
                    continue
                mfu = f"{s['mfu'] * 100:.1f}%" if s.get("mfu") is not None else "-"
                lines.append(f"| {label} | {s['median_step_s']:.3f} | {s['median_step_cpu_s']:.3f} | {s['tokens_per_s']:.0f} |"
                             f" {fmt_bytes(s['peak_bytes'])} |"
                             f" {fmt_bytes(s['peak_above_start_bytes'])} | {mfu} |")
            if ce and trl:
                lines.append(f"\ncurio / TRL: step time {ce['median_step_s'] / trl['median_step_s']:.2f},"
                             f" CPU time {ce['median_step_cpu_s'] / trl['median_step_cpu_s']:.2f},"
                             f" peak memory {ce['peak_bytes'] / trl['peak_bytes']:.2f}")
            lines.append("")
    chunked = results.get("chunked")
    if chunked:
        c = preset["chunked"]
        mem = "peak allocated above start" if preset["device"].startswith("cuda") else "peak RSS above start"
        lines += [
            "## CurioSFT loss: chunked vs naive full logits",
            "",
            f"One forward + backward of the CurioSFT loss (entropy-guided tau, teacher logits included) on N loss"
            f" tokens, vocabulary {c['vocab']}, hidden {c['hidden']}, {c['dtype']} hidden states and output layers,"
            f" chunk {c['chunk_size']}; time is the median of {c['reps']} repetition(s).",
            "",
            f"| tokens | chunked time (s) | naive time (s) | chunked CPU time (s) | naive CPU time (s) | chunked {mem}"
            f" | naive {mem} | memory naive / chunked | same loss |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for tokens, pair in chunked.items():
            a, b = pair.get("chunked"), pair.get("naive")
            if a is None or b is None:
                cells = ["failed" if x is None else f"{x['median_s']:.2f}" for x in (a, b)]
                lines.append(f"| {tokens} | {cells[0]} | {cells[1]} | | | | | | |")
                continue
            same = abs(a["loss"] - b["loss"]) <= 1e-4 * max(1.0, abs(b["loss"]))
            lines.append(
                f"| {tokens} | {a['median_s']:.2f} | {b['median_s']:.2f} | {a['median_cpu_s']:.2f} | {b['median_cpu_s']:.2f} |"
                f" {fmt_bytes(a['above'])} | {fmt_bytes(b['above'])} |"
                f" {b['above'] / max(a['above'], 1):.1f} | {'yes' if same else 'NO'} ({a['loss']:.5f} vs {b['loss']:.5f}) |"
            )
        lines.append("")
    parts = results.get("teacher_parts")
    if parts:
        steps = results.get("steps") or {}
        ce, curio = steps.get("ce"), steps.get("curio_lagged_entropy_guided")
        extra = curio["median_step_s"] - ce["median_step_s"] if ce and curio else None
        lines += [
            "## Where the lagged entropy-guided teacher's time goes",
            "",
            f"Each part of the extra work of `loss=curio teacher=lagged temp=entropy_guided` over `loss=ce`, timed"
            f" alone (`python -m bench.workers teacher_parts`) on this preset's model and {parts['loss_tokens']} loss"
            f" tokens per step; median of {parts['reps']} repetitions in each of {parts['rounds']} process(es)."
            + (f" Measured difference of the two steps above: {extra:.3f} s." if extra is not None else ""),
            "",
            "| part | ms per step | % of a ce step |",
            "|---|---:|---:|",
        ]
        total = 0.0
        for name, ms in parts["median_ms"].items():
            total += ms
            share = f"{100 * ms / 1000 / ce['median_step_s']:.1f}%" if ce else ""
            lines.append(f"| {name} | {ms:.1f} | {share} |")
        rest = total - parts["median_ms"].get("teacher decoder pass", 0.0)
        if ce:
            lines.append(f"| **all but the decoder pass** | {rest:.1f} | {100 * rest / 1000 / ce['median_step_s']:.1f}% |")
            lines.append(f"| **sum of the parts** | {total:.1f} | {100 * total / 1000 / ce['median_step_s']:.1f}% |")
        lines.append("")
    return "\n".join(lines)


# -------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu", help="a top-level key of bench/config.yaml (cpu, cpu_scaled, gpu)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a preset value, e.g. --set steps=30 --set chunked.tokens=[1024,4096]")
    parser.add_argument("--only", default="matmul,steps,trl,chunked",
                        help="comma-separated parts to run (default: matmul,steps,trl,chunked): matmul, steps, trl,"
                             " chunked, teacher (the lagged entropy-guided teacher's cost, part by part)")
    parser.add_argument("--losses", default=None, help="comma-separated subset of the preset's losses")
    parser.add_argument("--name", default=None, help="file stem under bench/results/ (default: the preset)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args(argv)
    preset = load_preset(args.preset, args.set)
    parts = set(args.only.split(","))
    command = "python -m bench.run " + " ".join(argv if argv is not None else sys.argv[1:])
    info = machine()
    results: dict[str, Any] = {}
    t0 = time.perf_counter()

    if preset["device"].startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise SystemExit(f"--preset {args.preset} needs a CUDA GPU; none is visible")

    if "matmul" in parts or "steps" in parts or "trl" in parts:
        print("matmul rate ...", flush=True)
        results["matmul"] = worker("matmul", preset)
    peak_rate = (results.get("matmul") or {}).get("flops_per_s")
    per_token = flops_per_token(preset["model"], preset["seq_len"])

    def with_mfu(s: dict[str, Any] | None) -> dict[str, Any] | None:
        if s is not None:
            s["model_flops_per_token"] = per_token
            s["mfu"] = per_token * s["tokens_per_s"] / peak_rate if peak_rate else None
        return s

    if "steps" in parts or "trl" in parts:
        losses = args.losses.split(",") if args.losses else list(preset["losses"])
        if "steps" not in parts:
            losses = ["ce"]
        if "ce" in losses:  # the reference first, then TRL right after it (same load on the machine)
            losses.remove("ce")
        losses.insert(0, "ce")
        jobs = [("step", loss) for loss in losses]
        if "trl" in parts and preset.get("trl", True):
            if trl_available():
                jobs.insert(1, ("trl", "trl"))
            else:
                results["trl_skipped"] = "trl is not installed (pip install trl, if it keeps the torch and transformers versions)"
        # Rounds: every job runs once per round, in reverse order every other round, so a slow
        # spell of a shared machine falls on all of them alike instead of on whichever ran then.
        rounds = int(preset.get("rounds", 1))
        raws: dict[str, list[dict[str, Any]]] = {name: [] for _, name in jobs}
        for r in range(rounds):
            for kind, name in jobs if r % 2 == 0 else jobs[::-1]:
                print(f"step: {name} (round {r + 1}/{rounds}) ...", flush=True)
                raw = worker(kind, preset, *(["--loss", name] if kind == "step" else []))
                if raw is not None:
                    raws[name].append(raw)
        results["steps"] = {}
        for kind, name in jobs:
            ok = len(raws[name]) == rounds  # a failed round fails the row: no silent partial numbers
            summary = with_mfu(summarize_steps(merge_rounds(raws[name], preset["warmup_steps"]), 0)) if ok else None
            if summary is not None:
                summary["raw_times_by_round"] = [raw["times"] for raw in raws[name]]
            if kind == "trl":
                results["trl"] = summary
            else:
                results["steps"][name] = summary

    if "teacher" in parts:
        rounds = int(preset.get("rounds", 1))
        pooled: dict[str, list[float]] = {}
        loss_tokens = None
        for r in range(rounds):
            print(f"teacher parts (round {r + 1}/{rounds}) ...", flush=True)
            raw = worker("teacher_parts", preset)
            if raw is not None:
                loss_tokens = raw["loss_tokens"]
                for name, values in raw["parts"].items():
                    pooled.setdefault(name, []).extend(values)
        if pooled:
            results["teacher_parts"] = {
                "median_ms": {name: 1000 * statistics.median(v) for name, v in pooled.items()},
                "raw_s": pooled, "loss_tokens": loss_tokens, "reps": 5, "rounds": rounds,
            }

    if "chunked" in parts:
        results["chunked"] = {}
        for tokens in preset["chunked"]["tokens"]:
            pair = {}
            for impl in ("chunked", "naive"):
                print(f"loss: {impl}, {tokens} tokens ...", flush=True)
                raw = worker("chunked", preset, "--impl", impl, "--tokens", str(tokens))
                pair[impl] = None if raw is None else {
                    "median_s": statistics.median(raw["times"]),
                    "median_cpu_s": statistics.median(raw["cpu_times"]),
                    "times": raw["times"],
                    "peak": raw["peak_bytes"],
                    "above": raw["peak_bytes"] - raw["baseline_bytes"],
                    "loss": raw["loss"],
                    "grad_norm": raw["grad_norm"],
                    "memory_kind": raw["kind"],
                }
            results["chunked"][str(tokens)] = pair

    results["total_wall_s"] = time.perf_counter() - t0
    write_results(Path(args.out), args.name or args.preset, report(info, args.preset, preset, command, results),
                  {"machine": info, "preset": preset, "command": command, "results": results})
    return 0


def write_results(out: Path, name: str, text: str, record: dict[str, Any]) -> None:
    """``<out>/<name>.md`` (the report and the total wall time) and ``<name>.json`` (everything)."""
    text += f"\nTotal wall time: {record['results']['total_wall_s']:.0f} s.\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.md").write_text(text)
    (out / f"{name}.json").write_text(json.dumps(record, indent=2))
    print(text)
    print(f"written: {out / (name + '.md')}, {out / (name + '.json')}")


if __name__ == "__main__":
    sys.exit(main())
