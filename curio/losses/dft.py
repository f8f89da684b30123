"""Dynamic Fine-Tuning (DFT, arXiv 2508.05629; spec section 7): cross-entropy weighted by p_t."""

from __future__ import annotations

from torch import Tensor

from curio.losses.base import TokenLoss
from curio.ops import target_logprob


class DFTLoss(TokenLoss):
    """``loss_t = -stopgrad(p_t) * log p_t`` with ``p_t = p_theta(y_t | s_t)``.

    The gradient is cross-entropy's scaled by the (detached) gold probability, so tokens the model
    finds unlikely are down-weighted. Metrics: ``ce`` (``-log p_t``) and ``dft_weight`` (``p_t``).
    """

    def token_losses(
        self, logits: Tensor, targets: Tensor, given: dict[str, Tensor]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        logp = target_logprob(logits, targets)
        weight = logp.detach().exp()
        return -weight * logp, {"ce": -logp, "dft_weight": weight}
