"""``python -m bench.sampler [--model DIR] [--problems P] [--eval-batch B] [--rollout-prompts R] [--threads T] [--repeats R]``

How much faster is :class:`~curio.evaluation.generation.HFGenerator`'s decoding loop than
``model.generate``? The loop drops each row from the batch and the KV cache once the row stops
(``generate`` keeps every row to the end), writes the KV cache into buffers allocated once
(``transformers``' cache grows by ``torch.cat``, copying itself at every step), and fills each
stopped row's place with a running row from the end of the batch (closing the gaps in order moves
every row after the first stopped one). Four variants run through the same generator (same
prompts, batching, seed, entropies and log-probabilities): ``generate``; the loop on
``transformers``' concatenating cache; the loop on the preallocated cache, gaps closed in order;
the loop as shipped. On the shipped fork-world base model (or ``--model``, e.g. a study's SFT
model), in the shapes the fork study samples:

- ``eval`` on ``fork_id`` and ``fork_ood``: P problems x 64 samples at T = 0.6, up to 320 new
  tokens, in batches of B (default 256, four problems' samples, padded), as
  ``python -m curio.claims`` evaluates every model;
- ``rollout``: 16 training prompts x 8 samples at T = 1, up to 192 new tokens, one padded batch of
  128, as one GRPO rollout step of ``rl.py prompts=fork_world``.

Prints a Markdown table (docs/benchmarks.md has the committed one), each time the fastest of
``--repeats`` interleaved rounds. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.cache_utils import DynamicCache

from curio.evaluation.generation import HFGenerator
from curio.evaluation.sampled import render_prompt
from curio.evaluation.sampling import SamplingParams
from curio.machine import cpu_model
from curio.tinyworld.corpus import read_jsonl

WORLD = Path(__file__).resolve().parents[1] / "assets" / "fork_world"


class GenerateCall(HFGenerator):
    """The same generator with ``model.generate`` for every batch (what it ran before its loop)."""

    _decode_loop = HFGenerator._generate_call


class ConcatenatingCache(HFGenerator):
    """The same generator's loop on ``transformers``' own KV cache, which grows by ``torch.cat``."""

    def _new_cache(self, positions: int) -> DynamicCache:
        return DynamicCache(config=self.model.config)


class GapsClosedInOrder(HFGenerator):
    """The same generator's loop, each step's stopped rows removed by moving every later row forward."""

    @staticmethod
    def _rows_kept(going: torch.Tensor) -> torch.Tensor:
        return going.nonzero().squeeze(-1)


def _prompts(tokenizer, file: str, count: int) -> list[list[int]]:
    rows = list(read_jsonl(WORLD / file))[:count]
    return [render_prompt(tokenizer, [m for m in row["messages"] if m["role"] != "assistant"]) for row in rows]


def _time(generator: HFGenerator, prompts: list[list[int]], params: SamplingParams) -> tuple[float, float]:
    """(seconds, mean new tokens per sample)."""
    start = time.perf_counter()
    samples = generator.generate(prompts, params)
    seconds = time.perf_counter() - start
    flat = [sample for per_prompt in samples for sample in per_prompt]
    return seconds, sum(sample.num_tokens for sample in flat) / len(flat)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", type=int, default=8, help="test problems per eval workload (default 8)")
    parser.add_argument("--eval-batch", type=int, default=256, help="eval samples per batch (default 256, the study's)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the study's steps use 1)")
    parser.add_argument("--model", type=Path, default=WORLD / "base",
                        help="a fork-world model folder (default: the shipped base)")
    parser.add_argument("--rollout-prompts", type=int, default=16, help="prompts of the rollout workload (default 16)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds; the fastest of each variant counts")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    evaluation = SamplingParams(n=64, temperature=0.6, max_new_tokens=320, seed=0)
    rollout = SamplingParams(n=8, temperature=1.0, max_new_tokens=192, seed=0)
    workloads = [
        (f"eval `fork_id`, {args.problems} problems x 64", _prompts(tokenizer, "test_id.jsonl", args.problems),
         evaluation, args.eval_batch),
        (f"eval `fork_ood`, {args.problems} problems x 64", _prompts(tokenizer, "test_ood.jsonl", args.problems),
         evaluation, args.eval_batch),
        (f"rollout, {args.rollout_prompts} prompts x 8, one padded batch",
         _prompts(tokenizer, "sft_train.jsonl", args.rollout_prompts), rollout, 8 * args.rollout_prompts),
    ]
    print("| workload | `model.generate` (s) | loop, `torch.cat` cache (s) | loop, preallocated, gaps closed in order (s) "
          "| loop as shipped (s) | speed-up over `generate` | of which filling from the end | mean new tokens "
          "(generate / loop) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, prompts, params, batch in workloads:
        variants = [variant(model, tokenizer, batch_size=batch, progress=False)
                    for variant in (GenerateCall, ConcatenatingCache, GapsClosedInOrder, HFGenerator)]
        # Interleaved rounds, fastest of each: another tenant's load on a shared machine hits every variant alike.
        rounds = [[_time(generator, prompts, params) for generator in variants] for _ in range(args.repeats)]
        times = [min(round_[i][0] for round_ in rounds) for i in range(len(variants))]
        tokens = [rounds[0][i][1] for i in range(len(variants))]
        old, cat, in_order, new = times
        print(f"| {name} | {old:.1f} | {cat:.1f} | {in_order:.1f} | {new:.1f} | {old / new:.2f}x | "
              f"{in_order / new:.2f}x | {tokens[0]:.1f} / {tokens[3]:.1f} |", flush=True)
    print(f"\n{args.model}: {cpu_model()}, {torch.get_num_threads()} thread(s), "
          f"torch {torch.__version__}")


if __name__ == "__main__":
    main()
