"""RL throughput: curio's GRPO step against TRL's ``GRPOTrainer`` on the same SFT export.

``python -m bench.rl [--model <HF folder>] [--steps 6] [--warmup 1] [--rounds 2] [--threads 2]``

Both trainers start from the same Hugging Face folder (by default the newest
``outputs/train/runs/*/hf``, what ``python train.py`` writes), take the same tiny-world training
problems with the same chat template, and per optimizer step sample ``prompts`` x ``group`` completions
at T = 1 with HF ``generate`` (one call for the whole rollout), reward them with the same grader
(curio's :class:`~curio.rl.rewards.Reward`, math-verify in one worker process), and update with the
same GRPO objective (PPO-clip 0.2, per-sequence token mean, group-std advantages, no KL, one
optimizer step per rollout, micro-batches of ``micro_batch``), in float32 on the CPU with
``--threads`` torch threads. Each (trainer, round) runs in its own process, in alternating order.

Reported: completions per second of a whole training step (rollout + update) after ``--warmup``
steps, the median step time, and curio's own breakdown of the step (rollout: sampling and rewards;
update: scoring the rollout and the optimizer step), from its ``train/rollout_s`` and
``train/update_s``. For TRL, ``generate`` (sampling + rewards + advantages, TRL's
``_generate_and_score_completions``) is timed by wrapping that method. Writes
``bench/results/<name>.md`` and ``.json``. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L

ROOT = Path(__file__).resolve().parents[1]
PROBLEMS = ROOT / "assets" / "tiny_world" / "sft_train.jsonl"


# ------------------------------------------------------------------------------------ workers
class StepTimer(L.Callback):
    """Wall time of every training step (one rollout step: sampling, rewards, scoring, update)."""

    def __init__(self, out: str):
        self.out, self.times, self._last = out, [], 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == 0:
            self._last = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = time.perf_counter()
        self.times.append(now - self._last)
        self._last = now

    def on_train_end(self, trainer, pl_module) -> None:
        Path(self.out).write_text(json.dumps(self.times))


def run_curio(setup: dict[str, Any], out: str) -> None:
    from omegaconf import open_dict

    from bench.workers import compose_config
    from curio.rl.run import rl

    tmp = Path(tempfile.mkdtemp(prefix="curio-bench-rl-"))
    total = setup["warmup"] + setup["steps"]
    overrides = [
        f"model.path={setup['model']}", f"prompts.problems.limit={setup['prompts'] * total}",
        f"rl.prompts_per_step={setup['prompts']}", f"rl.group_size={setup['group']}", "rl.mini_batches=1",
        "rl.updates_per_rollout=1", f"rl.micro_batch_size={setup['micro_batch']}",
        f"rl.sampling.max_new_tokens={setup['max_new_tokens']}", "rl.sampling.temperature=1.0",
        "rl.reference=false", "rl.aggregation=sequence_mean", "rl.scale_by_std=true", "rl.loss.kind=ppo_clip",
        f"rollout.batch_size={setup['prompts'] * setup['group']}", "optim.lr=1e-6", f"trainer.max_steps={total}",
        "trainer.enable_model_summary=false", "+trainer.enable_progress_bar=false", "logger=csv", "callbacks=none",
    ]
    cfg = compose_config("rl", overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp)
        cfg.callbacks = {"timer": {"_target_": "bench.rl.StepTimer", "out": str(tmp / "times.json")}}
    rl(cfg)
    with open(tmp / "csv" / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["train/rollout_s"]]
    Path(out).write_text(json.dumps({
        "times": json.loads((tmp / "times.json").read_text()),
        "rollout_s": [float(r["train/rollout_s"]) for r in rows],
        "update_s": [float(r["train/update_s"]) for r in rows],
        "completion_tokens": [float(r["train/response_length_mean"]) * setup["prompts"] * setup["group"] for r in rows],
        "reward": [float(r["train/reward_mean"]) for r in rows],
    }))


def run_trl(setup: dict[str, Any], out: str) -> None:
    from datasets import Dataset
    from omegaconf import OmegaConf
    from transformers import AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from curio.evaluation.loaders import load_jsonl_benchmark
    from curio.rl.rewards import Reward

    total = setup["warmup"] + setup["steps"]
    # The problems and grader as curio's prompts read them (conf/prompts/tiny_world.yaml).
    grader = OmegaConf.load(ROOT / "conf" / "prompts" / "tiny_world.yaml").problems.grader
    problems = load_jsonl_benchmark(PROBLEMS, "tiny_world_train", "id", grader=grader, messages_field="messages",
                                    drop_final_assistant=True, limit=setup["prompts"] * total).problems
    rows = [{"prompt": list(p.prompt), "answer": p.ground_truth} for p in problems]
    reward = Reward(timeout_s=10.0, num_workers=1)

    def correct(completions, answer, **_: Any) -> list[float]:
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        return reward(texts, answer, grader).values

    times: list[float] = []
    generate_s: list[float] = []

    class Timer(TrainerCallback):
        last = 0.0

        def on_train_begin(self, args, state, control, **kw):
            Timer.last = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            now = time.perf_counter()
            times.append(now - Timer.last)
            Timer.last = now

    per_step = setup["prompts"] * setup["group"]
    accumulation = per_step // setup["micro_batch"]
    tmp = Path(tempfile.mkdtemp(prefix="curio-bench-trl-grpo-"))
    args = GRPOConfig(
        output_dir=str(tmp), per_device_train_batch_size=setup["micro_batch"],
        gradient_accumulation_steps=accumulation, steps_per_generation=accumulation,
        num_generations=setup["group"], max_completion_length=setup["max_new_tokens"], temperature=1.0, top_p=1.0,
        beta=0.0, epsilon=0.2, loss_type="grpo", scale_rewards="group", num_iterations=1,
        learning_rate=1e-6, lr_scheduler_type="constant", weight_decay=0.01, max_grad_norm=1.0, max_steps=total,
        logging_steps=1, save_strategy="no", report_to="none", disable_tqdm=True, use_cpu=True, bf16=False,
        shuffle_dataset=False, seed=0, dataloader_num_workers=0, log_completions=False,
    )
    tokenizer = AutoTokenizer.from_pretrained(setup["model"])
    trainer = GRPOTrainer(model=setup["model"], reward_funcs=correct, args=args,
                          train_dataset=Dataset.from_list(rows), processing_class=tokenizer, callbacks=[Timer()])
    inner = trainer._generate_and_score_completions

    def timed(*a: Any, **k: Any) -> Any:
        start = time.perf_counter()
        try:
            return inner(*a, **k)
        finally:
            generate_s.append(time.perf_counter() - start)

    trainer._generate_and_score_completions = timed
    trainer.train()
    reward.close()
    lengths = [entry["completions/mean_length"] for entry in trainer.state.log_history
               if "completions/mean_length" in entry]
    Path(out).write_text(json.dumps({"times": times, "rollout_s": generate_s,
                                     "completion_tokens": [n * per_step for n in lengths]}))


# ---------------------------------------------------------------------------------- harness
def worker(kind: str, setup: dict[str, Any]) -> dict[str, Any] | None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "bench.rl", "--worker", kind, "--setup-json", json.dumps(setup), "--out", str(out)]
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if proc.returncode != 0 or not out.exists():
            print(f"  FAILED: {kind}\n{proc.stderr[-3000:]}", file=sys.stderr)
            return None
        result = json.loads(out.read_text())
        result["wall_s"] = time.perf_counter() - start
        return result


def summarize(runs: list[dict[str, Any]], warmup: int, completions: int) -> dict[str, Any]:
    times = [t for run in runs for t in run["times"][warmup:]]
    rollout = [t for run in runs for t in run["rollout_s"][warmup:]]
    summary = {
        "steps_measured": len(times),
        "median_step_s": statistics.median(times),
        "completions_per_s": completions * len(times) / sum(times),
        "median_rollout_s": statistics.median(rollout),
    }
    tokens = [t for run in runs for t in run["completion_tokens"][warmup:]]
    summary["completion_tokens_per_s"] = sum(tokens) / sum(times)
    summary["completion_tokens_per_step"] = statistics.mean(tokens)
    if "update_s" in runs[0]:
        summary["median_update_s"] = statistics.median(t for run in runs for t in run["update_s"][warmup:])
    return summary


def newest_export() -> str:
    exports = sorted((ROOT / "outputs" / "train" / "runs").glob("*/hf/config.json"), key=lambda p: p.stat().st_mtime)
    if not exports:
        raise SystemExit("no SFT export under outputs/train/runs/*/hf: run `python train.py` first, or pass --model")
    return str(exports[-1].parent)


def shown(path: str) -> str:
    """``path`` relative to the repository when it lies inside it (results name no machine's paths)."""
    try:
        return str(Path(path).relative_to(ROOT))
    except ValueError:
        return path


def report(setup: dict[str, Any], results: dict[str, dict[str, Any]], machine: dict[str, Any], command: str) -> str:
    curio, trl = results.get("curio"), results.get("trl")
    lines = [
        f"# RL step: curio GRPO vs TRL GRPOTrainer ({machine['date']})",
        "",
        f"- command: `{command}`",
        f"- machine: {machine['cpu']}, {machine['cpu_cores_usable']} cores usable, {setup['threads']} torch threads; "
        f"torch {machine['torch']}, transformers {machine['transformers']}, lightning {machine['lightning']}, "
        f"trl {machine['trl']}; commit `{machine['commit']}`{' (dirty)' if machine['dirty'] else ''}",
        f"- setup: `{shown(setup['model'])}` (float32), {setup['prompts']} prompts x {setup['group']} samples per step "
        f"(T = 1, up to {setup['max_new_tokens']} new tokens), micro-batches of {setup['micro_batch']}, one "
        f"optimizer step per rollout, no KL; {setup['steps']} measured steps after {setup['warmup']} warm-up, "
        f"x {setup['rounds']} rounds",
        "",
        "| trainer | completions/s | completion tokens/s | tokens per step | median step (s) | rollout (s) | update (s) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, summary in (("curio", curio), ("TRL `GRPOTrainer`", trl)):
        if summary is None:
            lines.append(f"| {name} | failed or not installed | | | | | |")
            continue
        update = f"{summary['median_update_s']:.2f}" if "median_update_s" in summary else \
            f"{summary['median_step_s'] - summary['median_rollout_s']:.2f} (step - rollout)"
        lines.append(f"| {name} | {summary['completions_per_s']:.2f} | {summary['completion_tokens_per_s']:.0f} | "
                     f"{summary['completion_tokens_per_step']:.0f} | {summary['median_step_s']:.2f} | "
                     f"{summary['median_rollout_s']:.2f} | {update} |")
    if curio and trl:
        lines += ["", f"curio / TRL completions per second: **{curio['completions_per_s'] / trl['completions_per_s']:.2f}x**"]
    if curio:
        share = curio["median_rollout_s"] / (curio["median_rollout_s"] + curio["median_update_s"])
        lines += ["", f"curio's step: rollout (sampling and rewards) {share:.0%}, update {1 - share:.0%}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="the SFT export (default: the newest outputs/train/runs/*/hf)")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--micro-batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--name", default="cpu_rl")
    parser.add_argument("--worker", choices=["curio", "trl"], help=argparse.SUPPRESS)
    parser.add_argument("--setup-json", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        import torch

        setup = json.loads(args.setup_json)
        torch.set_num_threads(setup["threads"])
        torch.manual_seed(0)
        (run_curio if args.worker == "curio" else run_trl)(setup, args.out)
        return

    from bench.run import machine

    setup = {"model": str(Path(args.model).resolve()) if args.model else newest_export(), "prompts": args.prompts,
             "group": args.group, "max_new_tokens": args.max_new_tokens, "micro_batch": args.micro_batch,
             "steps": args.steps, "warmup": args.warmup, "rounds": args.rounds, "threads": args.threads}
    if (args.prompts * args.group) % args.micro_batch:
        raise SystemExit("--micro-batch must divide --prompts x --group")
    kinds = ["curio"]
    try:
        import trl  # noqa: F401

        kinds.append("trl")
    except ImportError:
        print("trl is not installed (pip install trl==1.16.0): curio only", file=sys.stderr)
    raw: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    for round_ in range(args.rounds):
        for kind in kinds if round_ % 2 == 0 else kinds[::-1]:
            print(f"round {round_ + 1}/{args.rounds}: {kind}", file=sys.stderr)
            result = worker(kind, setup)
            if result is not None:
                raw[kind].append(result)
    completions = args.prompts * args.group
    results = {kind: summarize(runs, args.warmup, completions) for kind, runs in raw.items() if runs}
    info = machine()
    command = "python -m bench.rl " + " ".join((argv if argv is not None else sys.argv[1:]))
    text = report(setup, results, info, command.strip())
    out = ROOT / "bench" / "results" / args.name
    out.with_suffix(".md").write_text(text)
    out.with_suffix(".json").write_text(json.dumps({"setup": {**setup, "model": shown(setup["model"])},
                                                    "machine": info, "results": results,
                                                    "raw": raw}, indent=1))
    print(text)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("WANDB_MODE", "disabled")
    sys.exit(main())
