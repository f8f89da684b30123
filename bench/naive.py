"""The CurioSFT loss written the plain way: full float32 logits for the whole micro-batch.

The reference the chunked implementation (``curio.losses.CurioLoss``) is measured against: the
same numbers (loss, per-token metrics, gradient), but the student's ``[N, V]`` float32 logits are
materialised at once and kept for the backward pass, and so are the teacher's during its
temperature search.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from curio.ops import entropy, target_logprob
from curio.temperature import TemperatureRule


def naive_curio_loss(
    hidden: Tensor,
    head: nn.Module,
    teacher_hidden: Tensor,
    teacher_head: nn.Module,
    targets: Tensor,
    temperature: TemperatureRule,
    lam: float = 1.0,
    normalizer: float = 1.0,
) -> tuple[Tensor, dict[str, Tensor]]:
    """``sum_t (-log p_t + lam/2 (log p_t - log q_t)^2) / normalizer`` over all N tokens at once."""
    logits = head(hidden).float()  # [N, V] float32, saved for the backward pass
    with torch.no_grad():
        teacher_logits = teacher_head(teacher_hidden).float()  # [N, V]
        h = entropy(teacher_logits)
        temp = temperature(teacher_logits, h)
        logq = target_logprob(teacher_logits / temp.tau[:, None], targets)
        del teacher_logits
    logp = target_logprob(logits, targets)
    gap = logp - logq
    loss = (-logp + lam * 0.5 * gap.square()).sum() / normalizer
    with torch.no_grad():
        metrics = {"ce": -logp.detach(), "entropy": entropy(logits.detach()), "tau": temp.tau, "logq": logq}
    return loss, metrics
