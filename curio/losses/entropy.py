"""Entropy-regularised SFT (spec section 7): cross-entropy minus an entropy bonus."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from curio.losses.base import TokenLoss
from curio.ops import entropy, target_logprob


class EntropyRegularizedLoss(TokenLoss):
    """``loss_t = -log p_t - beta * m_t * H(pi_theta(. | s_t))``, full-vocabulary entropy with gradient.

    ``m_t = 1`` for every token, or with ``top_fraction = rho`` only for the ``ceil(rho * N)``
    tokens of highest (detached) entropy among the N loss tokens of the micro-batch. The selection
    needs every token's entropy, so it happens in :meth:`finish`, after all chunks: each chunk
    returns the differentiable pair ``(-log p_t, H_t)``, and the chunked path selects exactly the
    tokens the plain path does (no extra pass over the vocabulary). The selection is per
    micro-batch, like every other computation on a micro-batch; it is not synchronised across
    micro-batches or ranks.

    Args:
        beta: bonus weight. The paper sweeps it (small values barely move entropy, large ones make
            it explode) and the spec gives no default; 0.01 is a starting point to sweep from.
        top_fraction: rho in (0, 1], or None for the bonus on every token (the paper's ablation
            variant uses 0.2).
        chunk_size: see :class:`~curio.losses.base.TokenLoss`.

    Metrics: ``ce`` (``-log p_t``), ``entropy`` (``H_t``), ``entropy_bonus`` (``beta * m_t * H_t``,
    the amount subtracted from the token's loss).
    """

    def __init__(
        self,
        beta: float = 0.01,
        top_fraction: float | None = None,
        chunk_size: int | None = 1024,
    ):
        super().__init__(chunk_size=chunk_size)
        if top_fraction is not None and not 0 < top_fraction <= 1:
            raise ValueError(f"loss.top_fraction must be in (0, 1] or null, got {top_fraction}")
        self.beta = beta
        self.top_fraction = top_fraction

    def token_losses(
        self, logits: Tensor, targets: Tensor, given: dict[str, Tensor]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        ent = entropy(logits)
        ce = -target_logprob(logits, targets)
        return torch.stack([ce, ent], dim=-1), {"ce": ce, "entropy": ent}

    def finish(self, losses: Tensor, metrics: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        ce, ent = losses.unbind(-1)
        bonus = self.beta * ent * self._selected(ent.detach()).to(ent.dtype)
        return ce - bonus, {**metrics, "entropy_bonus": bonus.detach()}

    def _selected(self, ent: Tensor) -> Tensor:
        """``[N] -> [N]`` bool, the tokens that receive the bonus."""
        n = ent.shape[0]
        if self.top_fraction is None:
            return torch.ones(n, dtype=torch.bool, device=ent.device)
        # The small offset keeps float noise in rho * N (0.2 * 15 = 3.0000000000000004) from
        # adding a token.
        k = min(n, max(1, math.ceil(self.top_fraction * n - 1e-9)))
        mask = torch.zeros(n, dtype=torch.bool, device=ent.device)
        mask[ent.topk(k).indices] = True
        return mask
