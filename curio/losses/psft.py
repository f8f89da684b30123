"""Proximal SFT (PSFT, arXiv 2508.17784): SFT as PPO-clip with advantage 1 on every demonstration
token, against a snapshot of the model refreshed every few optimizer steps."""

from __future__ import annotations

import torch
from torch import Tensor

from curio.losses.base import TeacherChunk, TokenLoss
from curio.ops import target_logprob


class PSFTLoss(TokenLoss):
    """``loss_t = -min(r_t, clip(r_t, 1 - clip_low, 1 + clip_high))``, ``r_t = p_t / p_old(y_t)``
    (``exp`` of the log-ratio clamped to [-20, 20]).

    ``p_old`` is the teacher: a snapshot of the model (``teacher=snapshot``, a lagged copy synced
    fully every K optimizer steps; the authors' batch of 256 in mini-batches of 32 gives K = 8).
    With advantage 1 the clip only bites above: once a gold token's probability has risen past
    ``(1 + clip_high)`` times the snapshot's, it gets no more gradient until the next snapshot; the
    gradient is otherwise ``r_t * grad log p_t``.

    Args:
        clip_low, clip_high: the ratio's range [1 - clip_low, 1 + clip_high] (theirs: 0.2, 0.28).
        chunk_size: see :class:`~curio.losses.base.TokenLoss`.

    Metrics: ``ce``, ``ratio``, ``clipped`` (0/1: the clip cut this token's gradient), and the
    snapshot's ``old_logprob``.
    """

    needs_teacher = True

    def __init__(self, clip_low: float = 0.2, clip_high: float = 0.28, chunk_size: int | None = 1024):
        super().__init__(chunk_size=chunk_size)
        if not 0 <= clip_low < 1 or clip_high < 0:
            raise ValueError(f"loss.clip_low must be in [0, 1) and clip_high >= 0, got {clip_low}, {clip_high}")
        self.clip_low, self.clip_high = clip_low, clip_high

    def teacher_stats(self, teacher: TeacherChunk, targets: Tensor) -> dict[str, Tensor]:
        return {"old_logprob": target_logprob(teacher.logits, targets)}

    def token_losses(
        self, logits: Tensor, targets: Tensor, given: dict[str, Tensor]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        logp = target_logprob(logits, targets)
        # The log-ratio clamped to +-20 as verl does: a token far above its snapshot gets a finite
        # ratio (clipped, no gradient) instead of inf (whose gradient would be NaN).
        ratio = torch.exp((logp - given["old_logprob"]).clamp(-20.0, 20.0))
        clipped = ratio.clamp(1 - self.clip_low, 1 + self.clip_high)
        loss = -torch.minimum(ratio, clipped)
        cut = (clipped < ratio).float()  # with advantage 1 only the upper clip can win the min
        return loss, {"ce": -logp, "ratio": ratio, "clipped": cut}
