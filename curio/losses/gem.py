"""GEM (Li et al., "Preserving Diversity in Supervised Fine-Tuning of Large Language Models",
ICLR 2025): cross-entropy's pull toward the gold token, spread over the tokens the model itself
finds likely, so that fitting the demonstration does not collapse the distribution."""

from __future__ import annotations

import torch
from torch import Tensor

from curio.losses.base import TokenLoss
from curio.ops import target_logprob

WEIGHTINGS = ("logsigmoid", "linear")
_FLOAT32_MIN = torch.finfo(torch.float32).min


class GEMLoss(TokenLoss):
    """``loss_t = -sum_v q_v * w_v * (log p(y_t) - log p(v))`` over the vocabulary, with
    ``q = stopgrad(softmax(z / beta))`` (the model's own tempered distribution) and

    - ``logsigmoid`` (the authors' released runs): ``w_v = stopgrad(sigmoid(0.01 * (z_v - z_y)))``,
    - ``linear``: ``w_v = 1``, whose gradient in the logits is ``q - onehot(y)``.

    ``log p(y) - log p(v) = z_y - z_v`` (the normaliser cancels), which is how it is computed: one
    ``[n, V]`` product per chunk, no log-softmax over the vocabulary.

    Args:
        beta: the temperature of q (theirs: 0.7).
        weighting: ``logsigmoid`` or ``linear`` (the name of their function h).
        chunk_size: see :class:`~curio.losses.base.TokenLoss`.

    Metrics: ``ce`` (``-log p_t``).
    """

    def __init__(self, beta: float = 0.7, weighting: str = "logsigmoid", chunk_size: int | None = 1024):
        super().__init__(chunk_size=chunk_size)
        if not beta > 0:
            raise ValueError(f"loss.beta must be > 0, got {beta}")
        if weighting not in WEIGHTINGS:
            raise ValueError(f"loss.weighting must be one of {list(WEIGHTINGS)}, got {weighting!r}")
        self.beta, self.weighting = beta, weighting

    def token_losses(
        self, logits: Tensor, targets: Tensor, given: dict[str, Tensor]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        gold = logits.gather(-1, targets[:, None])  # [n, 1] z_y, with gradient
        with torch.no_grad():
            weights = torch.softmax(logits / self.beta, dim=-1)
            if self.weighting == "logsigmoid":
                weights.mul_(torch.sigmoid(0.01 * (logits - gold)))
        # = -sum_v q_v w_v (z_y - z_v); a -inf logit (masked vocabulary) has weight 0 and adds 0.
        loss = (weights * (logits - gold).clamp(min=_FLOAT32_MIN)).sum(dim=-1)
        return loss, {"ce": -target_logprob(logits.detach(), targets)}
