"""SFT anchored to the start model by a full-vocabulary KL: ASFT (Anchored SFT, arXiv 2509.23753)
and plain SFT + KL, the same code with cross-entropy in place of DFT's weighted term."""

from __future__ import annotations

import torch
from torch import Tensor

from curio.losses.base import TokenLoss
from curio.ops import log_softmax, target_logprob

FIT_TERMS = ("dft", "ce")


class AnchoredLoss(TokenLoss):
    """``loss_t = fit_t + kl_coef * KL(p_ref(. | s_t) || p_theta(. | s_t))``, the KL over the whole
    vocabulary against the teacher (the frozen start model, ``teacher=frozen``), where ``fit_t`` is

    - ``dft``: ``-stopgrad(p_t) * log p_t`` (ASFT), or
    - ``ce``: ``-log p_t`` (SFT + KL).

    The KL's gradient through the student's logits is ``kl_coef * (p_theta - p_ref)``; its
    ``[n, V]`` terms exist one chunk at a time (the teacher's chunk is projected again when the
    chunk is recomputed for the backward pass). Written as ``sum_v p_ref (log p_ref - log p_theta)``
    term by term with both log-softmaxes from :func:`curio.ops.log_softmax`, so float32 keeps it
    accurate for close distributions; vocabulary entries the teacher gives probability 0 (``-inf``
    logits) contribute 0.

    Args:
        fit: ``dft`` (ASFT) or ``ce`` (SFT + KL).
        kl_coef: lambda (ASFT's default 0.1).
        chunk_size: see :class:`~curio.losses.base.TokenLoss`.

    Metrics: ``ce`` (``-log p_t``), ``kl`` (to the start model), and ``dft_weight`` (``p_t``) with
    ``fit=dft``.
    """

    needs_teacher = True
    reads_teacher_distribution = True

    def __init__(self, fit: str = "dft", kl_coef: float = 0.1, chunk_size: int | None = 1024):
        super().__init__(chunk_size=chunk_size)
        if fit not in FIT_TERMS:
            raise ValueError(f"loss.fit must be one of {list(FIT_TERMS)}, got {fit!r}")
        if kl_coef < 0:
            raise ValueError(f"loss.kl_coef must be >= 0, got {kl_coef}")
        self.fit, self.kl_coef = fit, kl_coef

    def token_losses(
        self, logits: Tensor, targets: Tensor, given: dict[str, Tensor]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        logp = target_logprob(logits, targets)
        metrics = {"ce": -logp}
        if self.fit == "dft":
            weight = logp.detach().exp()
            fit = -weight * logp
            metrics["dft_weight"] = weight
        else:
            fit = -logp
        ref = given["teacher_logprobs"]
        p_ref = ref.exp()
        kl = torch.where(p_ref > 0, p_ref * (ref - log_softmax(logits)), 0.0).sum(dim=-1)
        metrics["kl"] = kl
        return fit + self.kl_coef * kl, metrics
