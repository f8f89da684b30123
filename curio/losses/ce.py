"""Vanilla SFT: token-level cross-entropy on the gold demonstration (spec section 7)."""

from __future__ import annotations

from torch import Tensor

from curio.losses.base import TokenLoss
from curio.ops import target_logprob


class CrossEntropyLoss(TokenLoss):
    """``loss_t = -log p_theta(y_t | s_t)``."""

    def token_losses(
        self, logits: Tensor, targets: Tensor, given: dict[str, Tensor]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        ce = -target_logprob(logits, targets)
        return ce, {"ce": ce}
