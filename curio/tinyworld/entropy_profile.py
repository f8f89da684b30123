"""The shape of a model's token entropy on its own samples: what the fork world is built to match.

Wang et al. 2025 ("Beyond the 80/20 Rule", arXiv 2506.01939) measured Qwen3-8B's chains of thought
on math: over half the tokens have near-zero entropy, the 80th percentile is 0.672 nats, and the
high-entropy minority are forks. This module measures the same quantity on a tiny world's base
model (sample at T = 1 from the world's prompts; for every generated token, the end-of-turn token
included, the entropy of the full next-token distribution it was drawn from) and summarises it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from curio.evaluation.generation import HFGenerator
from curio.evaluation.sampling import SamplingParams

#: The authors' pivot of the entropy-guided temperature (spec): tokens above it are "high entropy".
PIVOT_NATS = 1.2
#: The world's targets (issue: the paper's pipeline at small scale), fixed before any run on it.
TARGETS: dict[str, tuple[float, float]] = {
    "median": (0.0, 0.05),
    "p80": (0.5, 0.9),
    "share_above_pivot": (0.05, 1.0),
}


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q`` quantile by linear interpolation between order statistics (numpy's default)."""
    if not sorted_values:
        raise ValueError("quantile of no values")
    position = q * (len(sorted_values) - 1)
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def summarise(values: Sequence[float]) -> dict[str, Any]:
    """Quantiles, mean and tail shares of per-token entropies, and whether each target is met."""
    ordered = sorted(values)
    summary: dict[str, Any] = {
        "tokens": len(ordered),
        "mean": sum(ordered) / len(ordered),
        "median": quantile(ordered, 0.5),
        "p80": quantile(ordered, 0.8),
        "p90": quantile(ordered, 0.9),
        "share_below_0.05": sum(v < 0.05 for v in ordered) / len(ordered),
        "share_above_0.672": sum(v > 0.672 for v in ordered) / len(ordered),
        "share_above_pivot": sum(v > PIVOT_NATS for v in ordered) / len(ordered),
    }
    summary["targets_met"] = {name: low <= summary[name] <= high for name, (low, high) in TARGETS.items()}
    return summary


def sampled_token_entropies(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Sequence[int]],
    n: int = 1,
    seed: int = 0,
    max_new_tokens: int = 512,
    batch_size: int = 64,
) -> tuple[list[float], list[str]]:
    """Every generated token's entropy (nats, T = 1, full vocabulary), and the sampled texts.

    Pure sampling: T = 1, no top-k or top-p, so the entropy measured is that of the distribution the
    token was actually drawn from.
    """
    params = SamplingParams(n=n, temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=max_new_tokens, seed=seed)
    samples = HFGenerator(model, tokenizer, batch_size=batch_size).generate(prompts, params, desc="sample at T=1")
    values = [value for per_prompt in samples for sample in per_prompt for value in sample.token_entropies or ()]
    texts = [sample.text for per_prompt in samples for sample in per_prompt]
    return values, texts
