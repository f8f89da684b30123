"""The CurioSFT loss (spec sections 5-6): cross-entropy plus a pull toward a heated copy of the model."""

from __future__ import annotations

from torch import Tensor

from curio.losses.base import TeacherChunk, TokenLoss
from curio.ops import entropy, target_logprob, target_logprob_at
from curio.temperature import TemperatureRule


class CurioLoss(TokenLoss):
    """``loss_t = -log p_t + lam * 1/2 * (log p_t - log q_t)**2``, with ``log q_t`` a constant.

    ``log q_t = log softmax(z_teacher(s_t) / tau_t)[y_t]`` over the full vocabulary, where the
    temperature rule picks ``tau_t`` from the teacher's logits. The second term ("k2") acts on
    the gold token only; there is no full-vocabulary KL. Its gradient is cross-entropy's times a
    detached per-token weight::

        grad loss_t = -w_t * grad log p_t,    w_t = 1 - lam * (log p_t - log q_t)

    (w < 1 where the student is already more confident than its heated teacher, w > 1 where it is
    less; the per-token optimum is p* = min(1, e * q)).

    The teacher's ``[n, V]`` logits are reduced to ``[n]`` vectors in :meth:`teacher_stats`, so the
    backward pass keeps nothing of the teacher but ``log q_t``.

    Args:
        temperature: the rule choosing tau_t (``conf/temp/``: entropy_guided or fixed).
        lam: lambda, the weight of the k2 term (authors: 1).
        chunk_size: see :class:`~curio.losses.base.TokenLoss`.

    Metrics: ``ce``, ``k2`` (1/2 (log p - log q)^2), ``w`` (the gradient weight above), and from the
    teacher ``logq``, ``tau``, ``teacher_entropy`` (full vocabulary, T = 1), ``tau_gated``,
    ``tau_at_min``, ``tau_at_max`` (0/1, disjoint; see :class:`~curio.temperature.TemperatureResult`).
    """

    needs_teacher = True

    def __init__(self, temperature: TemperatureRule, lam: float = 1.0, chunk_size: int | None = 1024):
        super().__init__(chunk_size=chunk_size)
        if lam < 0:
            raise ValueError(f"loss.lam must be >= 0, got {lam}")
        self.temperature = temperature
        self.lam = lam

    def teacher_stats(self, teacher: TeacherChunk, targets: Tensor) -> dict[str, Tensor]:
        z = teacher.logits
        h = entropy(z) if teacher.entropy is None else teacher.entropy
        temp = self.temperature(z, h)
        logq = target_logprob_at(z, targets, temp.tau)
        return {
            "logq": logq,
            "tau": temp.tau,
            "teacher_entropy": h,
            "tau_gated": temp.gated.float(),
            "tau_at_min": temp.at_min.float(),
            "tau_at_max": temp.at_max.float(),
        }

    def token_losses(
        self, logits: Tensor, targets: Tensor, given: dict[str, Tensor]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        logp = target_logprob(logits, targets)
        gap = logp - given["logq"]
        k2 = 0.5 * gap.square()
        return -logp + self.lam * k2, {"ce": -logp, "k2": k2, "w": 1 - self.lam * gap}
