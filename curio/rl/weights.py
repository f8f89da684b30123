"""How the token losses of an RL optimizer step are aggregated: a weight per response token.

The weight is decided once per optimizer step from the lengths of all its sequences (every
micro-batch, every rank), so the step's gradient does not depend on how they are split.

- ``token_mean`` (DAPO; TRL's and verl's default): the mean over every response token of the step;
- ``sequence_mean`` (the original GRPO): each sequence's token mean, then the mean over sequences
  (longer responses weigh less per token);
- ``constant`` (Dr.GRPO; the CurioSFT authors): each sequence's token sum divided by a constant,
  the longest response allowed (``max_response_tokens``), then the mean over sequences.
"""

from __future__ import annotations

from collections.abc import Sequence

AGGREGATIONS = ("token_mean", "sequence_mean", "constant")


def check_aggregation(name: str) -> None:
    if name not in AGGREGATIONS:
        raise ValueError(f"rl.aggregation must be one of {list(AGGREGATIONS)}, got {name!r}")


def sequence_weights(lengths: Sequence[int], aggregation: str, max_response_tokens: int,
                     total_tokens: int | None = None, total_sequences: int | None = None) -> list[float]:
    """The weight of each token of each sequence (one number per sequence: all its tokens share it).

    Args:
        lengths: response tokens (loss tokens) of this rank's sequences in the step.
        aggregation: one of :data:`AGGREGATIONS`.
        max_response_tokens: the constant of ``constant``.
        total_tokens, total_sequences: the step's totals over every rank (default: this rank's).
    """
    check_aggregation(aggregation)
    total_tokens = sum(lengths) if total_tokens is None else total_tokens
    total_sequences = len(lengths) if total_sequences is None else total_sequences
    if aggregation == "token_mean":
        return [1.0 / max(total_tokens, 1)] * len(lengths)
    if aggregation == "sequence_mean":
        return [1.0 / (max(n, 1) * max(total_sequences, 1)) for n in lengths]
    return [1.0 / (max_response_tokens * max(total_sequences, 1))] * len(lengths)
