"""Packed (padding-free) batches: several rows in one sequence, each attending to itself only.

``data.packing=true`` groups the training rows into *packs* of at most ``data.pack_tokens`` tokens,
once (:func:`pack_rows`, best-fit decreasing; a pure function of the lengths, so every rank and
every epoch sees the same packs, and the number of optimizer steps is known before training). The
sampler then treats each pack as one sequence: ``data.micro_batch_size`` packs per micro-batch,
shuffled by epoch like rows are.

:class:`PackCollator` lays a micro-batch out as ``[packs, longest pack]``: each pack's rows end to
end, ``position_ids`` restarting at 0 for every row, and no ``attention_mask`` passed to the model,
from which ``transformers`` builds a block-diagonal causal mask (each row attends within itself;
SDPA and eager on any device, FlashAttention's variable-length kernel when it is the attention
implementation). Labels are those of each row on its own: the last position of a row predicts
nothing, so no row learns to predict the next one. A pack shorter than the longest is filled with
one padding segment (positions from 0 again: a segment of its own, no label).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import torch

from curio.data.collate import IGNORE, SFTBatch, row_tensors, step_loss_tokens
from curio.errors import ConfigError


def pack_rows(lengths: Sequence[int], budget: int) -> list[list[int]]:
    """Group row indices into packs of at most ``budget`` tokens, best-fit decreasing.

    Rows are placed longest first, each into the pack whose free space it fills best (the fullest
    pack it fits in), or into a new pack. Within a pack, rows keep the order they were placed in.

    Raises:
        ConfigError: a row longer than ``budget``.
    """
    longest = max(lengths, default=0)
    if longest > budget:
        over = sum(n > budget for n in lengths)
        raise ConfigError(f"data.pack_tokens={budget}: {over} training row(s) are longer (the longest has "
                          f"{longest} tokens); raise data.pack_tokens or lower data.max_response_tokens")
    packs: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (free tokens, pack index), sorted
    for i in sorted(range(len(lengths)), key=lambda j: (-lengths[j], j)):
        n = lengths[i]
        slot = bisect.bisect_left(free, (n, -1))
        if slot < len(free):
            space, p = free.pop(slot)
            packs[p].append(i)
            bisect.insort(free, (space - n, p))
        else:
            packs.append([i])
            bisect.insort(free, (budget - n, len(packs) - 1))
    return packs


class PackCollator:
    """``[[row item, ...] per pack] -> SFTBatch`` with ``position_ids`` and no padding between rows.

    Each row item is ``{"input_ids", "loss_mask", "step_loss_tokens"?}`` as for
    :class:`~curio.data.collate.Collator`, and gets the same per-row labels
    (:func:`~curio.data.collate.row_tensors`).
    """

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, packs: list[list[dict]]) -> SFTBatch:
        width = max(sum(len(r["input_ids"]) for r in pack) for pack in packs)
        shape = (len(packs), width)
        input_ids = torch.full(shape, self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros(shape, dtype=torch.long)  # 1 on real tokens (counted, not passed)
        labels = torch.full(shape, IGNORE, dtype=torch.long)
        position_ids = torch.zeros(shape, dtype=torch.long)
        for b, pack in enumerate(packs):
            start = 0
            for row in pack:
                ids, row_labels = row_tensors(row)
                n = ids.numel()
                input_ids[b, start : start + n] = ids
                labels[b, start : start + n] = row_labels
                attention_mask[b, start : start + n] = 1
                position_ids[b, start : start + n] = torch.arange(n)
                start += n
            position_ids[b, start:] = torch.arange(width - start)  # the padding: a segment of its own
        return SFTBatch(input_ids, attention_mask, labels, step_loss_tokens(packs[0][0], labels), position_ids)
