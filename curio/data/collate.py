"""Pad a list of encoded samples into a batch of tensors."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

IGNORE = -100


@dataclass
class SFTBatch:
    """A padded micro-batch.

    Attributes:
        input_ids: ``[B, T]`` token ids, right-padded.
        attention_mask: ``[B, T]`` 1 on real tokens.
        labels: ``[B, T]`` already shifted: ``labels[b, t]`` is the token to predict from position
            ``t`` (that is, ``input_ids[b, t + 1]``) or ``-100`` where there is no loss.
        step_loss_tokens: loss tokens in the whole optimizer step (all micro-batches, all ranks);
            for validation batches, this micro-batch's own count.
        position_ids: ``[B, T]`` for packed batches (``curio.data.packing``): each row's positions
            from 0. The model then gets these and no attention mask, and keeps attention within each
            row; ``attention_mask`` still marks the real tokens (for counting). None when padded.
    """

    input_ids: Tensor
    attention_mask: Tensor
    labels: Tensor
    step_loss_tokens: Tensor
    position_ids: Tensor | None = None

    @property
    def model_inputs(self) -> dict[str, Tensor]:
        """What the decoder is called with (the student's and a teacher model's, alike)."""
        if self.position_ids is not None:
            return {"input_ids": self.input_ids, "position_ids": self.position_ids}
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask}

    def to(self, device) -> SFTBatch:
        fields = (self.input_ids, self.attention_mask, self.labels, self.step_loss_tokens, self.position_ids)
        return SFTBatch(*(None if t is None else t.to(device) for t in fields))


class Collator:
    """``[{"input_ids", "loss_mask", "step_loss_tokens"?}] -> SFTBatch`` with right padding."""

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int = 1):
        self.pad_token_id = pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, samples: list[dict]) -> SFTBatch:
        longest = max(len(s["input_ids"]) for s in samples)
        m = self.pad_to_multiple_of
        width = -(-longest // m) * m
        batch = len(samples)
        input_ids = torch.full((batch, width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((batch, width), dtype=torch.long)
        labels = torch.full((batch, width), IGNORE, dtype=torch.long)
        for b, sample in enumerate(samples):
            ids, row_labels = row_tensors(sample)
            n = ids.numel()
            input_ids[b, :n] = ids
            attention_mask[b, :n] = 1
            labels[b, :n] = row_labels
        return SFTBatch(input_ids, attention_mask, labels, step_loss_tokens(samples[0], labels))


def row_tensors(sample: dict) -> tuple[Tensor, Tensor]:
    """One encoded row's ``[n]`` token ids and ``[n]`` shifted labels: position t predicts token
    t + 1 and carries a loss when token t + 1 is supervised; the last position predicts nothing."""
    ids = torch.tensor(sample["input_ids"], dtype=torch.long)
    mask = torch.tensor(sample["loss_mask"], dtype=torch.bool)
    labels = torch.full_like(ids, IGNORE)
    labels[:-1] = torch.where(mask[1:], ids[1:], IGNORE)
    return ids, labels


def step_loss_tokens(first: dict, labels: Tensor) -> Tensor:
    """The batch's ``step_loss_tokens``: the optimizer step's count the sampler put on its rows
    (``first``, any of them), else (validation) the batch's own."""
    step = first.get("step_loss_tokens")
    return torch.tensor(int((labels != IGNORE).sum()) if step is None else step, dtype=torch.long)
