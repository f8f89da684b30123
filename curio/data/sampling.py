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
from dataclasses import dataclass

import torch
from torch.utils.data import Sampler

from curio.errors import ConfigError, check_count


@dataclass(frozen=True)
class StepLayout:
    """How one optimizer step's sequences are laid out: micro-batches x accumulation x ranks.

    Args:
        micro_batch_size: sequences per micro-batch on one rank (``data.micro_batch_size``).
        accumulate: micro-batches per optimizer step on one rank (``trainer.accumulate_grad_batches``).
        world_size: data-parallel ranks (devices x nodes).
    """

    micro_batch_size: int
    accumulate: int = 1
    world_size: int = 1

    def __post_init__(self) -> None:
        # accumulate and world_size come from Lightning's Trainer, which checks them.
        check_count("data.micro_batch_size", self.micro_batch_size)

    @property
    def sequences(self) -> int:
        """Sequences in one optimizer step, over every micro-batch and rank."""
        return self.micro_batch_size * self.accumulate * self.world_size

    def steps(self, num_samples: int) -> int:
        """Optimizer steps in one epoch of ``num_samples`` sequences (incomplete steps are dropped)."""
        return num_samples // self.sequences

    def check_fits(self, num_samples: int, unit: str = "sequences") -> None:
        """One optimizer step must fit in the training set (of ``num_samples`` sequences or packs)."""
        if num_samples < self.sequences:
            raise ConfigError(
                f"one optimizer step needs {self.sequences} {unit} (data.micro_batch_size="
                f"{self.micro_batch_size} x trainer.accumulate_grad_batches={self.accumulate} x "
                f"{self.world_size} device(s)) but the training set has only {num_samples}"
            )


class StepWindowSampler(Sampler[list[tuple[int, int]]]):
    """Yields this rank's micro-batches as lists of ``(sample_index, step_loss_tokens)``.

    Args:
        lengths: sequence length of each sample (for grouping).
        loss_tokens: supervised tokens of each sample (for the step denominator).
        layout: micro-batch size, accumulation and ranks of one optimizer step.
        rank: this rank.
        seed: shuffling seed; ``shuffle=False`` keeps the data order (and still groups nothing).
        bucket_windows: windows per length bucket; larger cuts more padding, randomises less.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        loss_tokens: Sequence[int],
        layout: StepLayout,
        rank: int = 0,
        seed: int = 0,
        shuffle: bool = True,
        group_by_length: bool = True,
        bucket_windows: int = 50,
    ):
        self.lengths = list(lengths)
        self.loss_tokens = list(loss_tokens)
        self.layout = layout
        self.rank = rank
        self.seed = seed
        self.shuffle = shuffle
        self.group_by_length = group_by_length and shuffle
        self.bucket_windows = bucket_windows
        self.epoch = 0
        self.skip = 0  # micro-batches of the current epoch already trained on (set on resume)
        layout.check_fits(len(self.lengths))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.layout.steps(len(self.lengths)) * self.layout.accumulate

    def windows(self) -> list[list[int]]:
        """The epoch's global step windows, each a list of sample indices."""
        n = len(self.lengths)
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(n, generator=generator).tolist() if self.shuffle else list(range(n))
        if self.group_by_length:
            bucket = self.layout.sequences * self.bucket_windows
            order = [
                i
                for start in range(0, n, bucket)
                for i in sorted(order[start : start + bucket], key=lambda j: -self.lengths[j])
            ]
        window = self.layout.sequences
        windows = [order[s : s + window] for s in range(0, n - window + 1, window)]
        if self.shuffle:
            perm = torch.randperm(len(windows), generator=generator).tolist()
            windows = [windows[i] for i in perm]
        return windows

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        size, accumulate = self.layout.micro_batch_size, self.layout.accumulate
        skip, self.skip = self.skip, 0  # a resumed epoch skips what it trained on, only once
        count = 0
        for window in self.windows():
            step_tokens = sum(self.loss_tokens[i] for i in window)
            # Micro-batch (rank r, accumulation slot j) holds window[(r * accumulate + j) * size : ...].
            for j in range(accumulate):
                count += 1
                if count <= skip:
                    continue
                start = (self.rank * accumulate + j) * size
                yield [(i, step_tokens) for i in window[start : start + size]]
