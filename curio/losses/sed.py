"""SED-SFT (arXiv 2602.07464): cross-entropy plus a penalty pulling uncertain gold tokens' probability
toward one half."""

from __future__ import annotations

from torch import Tensor

from curio.losses.base import TokenLoss
from curio.ops import target_logprob, top_k_values


class SEDLoss(TokenLoss):
    """``loss_t = -log p_t + lam * m_t * (p_t - 1/2)**2``, with ``p_t`` the gold token's probability
    (with gradient) and ``m_t = 1`` where the model is uncertain: the probability mass of its
    ``top_k`` most likely tokens is below ``threshold`` (decided without gradient), else 0.

    Args:
        lam: weight of the penalty (their released runs: 1.0; their function's default 0.2).
        top_k: tokens whose probability mass decides uncertainty (theirs: 2).
        threshold: the mass below which a position is uncertain. A fixed value here; their runs
            calibrate it once from the start model (the top-k mass exceeded at 70% of the
            positions of 100 sequences), which `docs/method.md` describes how to reproduce.
        chunk_size: see :class:`~curio.losses.base.TokenLoss`.

    Metrics: ``ce``, ``sed_penalty`` (``lam * m_t * (p_t - 1/2)**2``), ``sed_mask`` (``m_t``),
    ``top_mass`` (the top-k probability mass).
    """

    def __init__(self, lam: float = 1.0, top_k: int = 2, threshold: float = 0.7, chunk_size: int | None = 1024):
        super().__init__(chunk_size=chunk_size)
        if lam < 0:
            raise ValueError(f"loss.lam must be >= 0, got {lam}")
        if top_k < 1:
            raise ValueError(f"loss.top_k must be >= 1, got {top_k}")
        if not 0 < threshold <= 1:
            raise ValueError(f"loss.threshold must be in (0, 1], got {threshold}")
        self.lam, self.top_k, self.threshold = lam, top_k, threshold

    def token_losses(
        self, logits: Tensor, targets: Tensor, given: dict[str, Tensor]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        logp = target_logprob(logits, targets)
        z = logits.detach()
        top_mass = (top_k_values(z, min(self.top_k, z.shape[-1])) - z.logsumexp(dim=-1, keepdim=True)).exp().sum(-1)
        mask = (top_mass < self.threshold).to(logp.dtype)
        penalty = self.lam * mask * (logp.exp() - 0.5).square()
        return -logp + penalty, {"ce": -logp, "sed_penalty": penalty, "sed_mask": mask, "top_mass": top_mass}
