"""How the summed per-token losses of a micro-batch become its share of the optimizer step's loss
(spec section 6). The training module owns one and asks it for the divisor every micro-batch."""

from __future__ import annotations

import torch
from torch import Tensor

from curio.errors import ConfigError

AGGREGATIONS = ("step_token_mean", "micro_batch_token_mean")


class Aggregation:
    """Args:
    name: ``step_token_mean`` divides by the loss tokens of the whole optimizer step (all
        micro-batches, all ranks: independent of the hardware layout); ``micro_batch_token_mean``
        takes each micro-batch's token mean and averages those (the CurioSFT authors' choice).
    """

    def __init__(self, name: str = "step_token_mean"):
        if name not in AGGREGATIONS:
            raise ConfigError(f"module.aggregation={name!r}: choose one of {', '.join(AGGREGATIONS)}")
        self.name = name

    def divisor(self, step_loss_tokens: Tensor, loss_tokens: Tensor, micro_batches_per_step: int) -> Tensor:
        """What one micro-batch's summed token losses are divided by.

        Args:
            step_loss_tokens: loss tokens in the whole optimizer step (scalar tensor).
            loss_tokens: loss tokens in this micro-batch (scalar tensor).
            micro_batches_per_step: micro-batches of the step over all ranks. Lightning divides each
                micro-batch's loss by the accumulation count and DDP/FSDP average over ranks;
                ``step_token_mean`` undoes both, so the step's gradient is
                (sum of token losses) / (loss tokens in the step).
        """
        if self.name == "step_token_mean":
            return step_loss_tokens.clamp(min=1).to(torch.float32) / micro_batches_per_step
        return loss_tokens.clamp(min=1).to(torch.float32)
