"""Deterministic, length-grouped batches laid out by optimizer step.

Samples are shuffled with ``seed + epoch``, grouped into buckets of similar length (to cut padding),
and cut into *step windows*: the ``world_size x accumulate`` micro-batches of one optimizer step.
Windows are shuffled again so long and short steps interleave. Every rank computes the same global
layout and takes its own micro-batches, so each micro-batch also knows how many loss tokens the
whole optimizer step holds (all micro-batches, all ranks): the denominator of the layout-free
token mean (spec section 6) with no communication. Incomplete final windows are dropped, so every
optimizer step has the same number of sequences.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler

from curio.errors import ConfigError


def check_step_fits(num_samples: int, micro_batch_size: int, accumulate: int, world_size: int) -> None:
    """One optimizer step must fit in the training set (incomplete windows are dropped)."""
    window = micro_batch_size * accumulate * world_size
    if num_samples < window:
        raise ConfigError(
            f"one optimizer step needs {window} sequences (data.micro_batch_size={micro_batch_size}"
            f" x trainer.accumulate_grad_batches={accumulate} x {world_size} device(s)) but the "
            f"training set has only {num_samples}"
        )


class StepWindowSampler(Sampler[list[tuple[int, int]]]):
    """Yields this rank's micro-batches as lists of ``(sample_index, step_loss_tokens)``.

    Args:
        lengths: sequence length of each sample (for grouping).
        loss_tokens: supervised tokens of each sample (for the step denominator).
        micro_batch_size: sequences per micro-batch on one rank.
        accumulate: micro-batches per optimizer step on one rank (gradient accumulation).
        world_size, rank: data-parallel layout.
        seed: shuffling seed; ``shuffle=False`` keeps the data order (and still groups nothing).
        bucket_windows: windows per length bucket; larger cuts more padding, randomises less.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        loss_tokens: Sequence[int],
        micro_batch_size: int,
        accumulate: int = 1,
        world_size: int = 1,
        rank: int = 0,
        seed: int = 0,
        shuffle: bool = True,
        group_by_length: bool = True,
        bucket_windows: int = 50,
    ):
        self.lengths = list(lengths)
        self.loss_tokens = list(loss_tokens)
        self.micro_batch_size = micro_batch_size
        self.accumulate = accumulate
        self.world_size = world_size
        self.rank = rank
        self.seed = seed
        self.shuffle = shuffle
        self.group_by_length = group_by_length and shuffle
        self.bucket_windows = bucket_windows
        self.epoch = 0
        self.skip = 0  # micro-batches of the current epoch already trained on (set on resume)
        self.window = micro_batch_size * accumulate * world_size
        check_step_fits(len(self.lengths), micro_batch_size, accumulate, world_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return (len(self.lengths) // self.window) * self.accumulate

    def windows(self) -> list[list[int]]:
        """The epoch's global step windows, each a list of sample indices."""
        n = len(self.lengths)
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(n, generator=generator).tolist() if self.shuffle else list(range(n))
        if self.group_by_length:
            bucket = self.window * self.bucket_windows
            order = [
                i
                for start in range(0, n, bucket)
                for i in sorted(order[start : start + bucket], key=lambda j: -self.lengths[j])
            ]
        windows = [order[s : s + self.window] for s in range(0, n - self.window + 1, self.window)]
        if self.shuffle:
            perm = torch.randperm(len(windows), generator=generator).tolist()
            windows = [windows[i] for i in perm]
        return windows

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        size = self.micro_batch_size
        skip, self.skip = self.skip, 0  # a resumed epoch skips what it trained on, only once
        count = 0
        for window in self.windows():
            step_tokens = sum(self.loss_tokens[i] for i in window)
            # Micro-batch (rank r, accumulation slot j) holds window[(r * accumulate + j) * size : ...].
            for j in range(self.accumulate):
                count += 1
                if count <= skip:
                    continue
                start = (self.rank * self.accumulate + j) * size
                yield [(i, step_tokens) for i in window[start : start + size]]
