"""EAFT (entropy-aware fine-tuning, arXiv 2601.02151): cross-entropy weighted by how uncertain the
model is among its top candidates, so confident positions (where a demonstration disagrees with
what the model already knows) move the model less; aimed at forgetting."""

from __future__ import annotations

from torch import Tensor

from curio.losses.base import TokenLoss
from curio.ops import entropy, target_logprob, top_k_values


class EAFTLoss(TokenLoss):
    """``loss_t = -stopgrad((H_k(z_t) / normalizer) ** alpha) * log p_t``, where ``H_k`` is the
    entropy of the softmax over the ``top_k`` largest logits alone (renormalised).

    Args:
        alpha: the weight's exponent (theirs: 1).
        top_k: candidates the entropy is taken over (theirs: 20).
        normalizer: divides the entropy (theirs: 3.0, just above ln 20, so the weight stays < 1).
        chunk_size: see :class:`~curio.losses.base.TokenLoss`.

    Metrics: ``ce``, ``eaft_weight``.
    """

    def __init__(self, alpha: float = 1.0, top_k: int = 20, normalizer: float = 3.0, chunk_size: int | None = 1024):
        super().__init__(chunk_size=chunk_size)
        if alpha < 0 or top_k < 1 or not normalizer > 0:
            raise ValueError(f"loss.alpha must be >= 0, top_k >= 1 and normalizer > 0, got {alpha}, {top_k}, "
                             f"{normalizer}")
        self.alpha, self.top_k, self.normalizer = alpha, top_k, normalizer

    def token_losses(
        self, logits: Tensor, targets: Tensor, given: dict[str, Tensor]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        logp = target_logprob(logits, targets)
        top = top_k_values(logits.detach(), min(self.top_k, logits.shape[-1]))
        weight = (entropy(top) / self.normalizer).pow(self.alpha)
        return -weight * logp, {"ce": -logp, "eaft_weight": weight}
