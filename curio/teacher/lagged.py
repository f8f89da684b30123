"""The authors' default teacher (spec section 4): a near-copy of the student, synced every few steps."""

from __future__ import annotations

from torch import nn

from curio.teacher.base import CopyTeacher
from curio.teacher.sync import lerp_


class LaggedTeacher(CopyTeacher):
    """Every ``sync_every`` optimizer steps, ``phi <- (1 - alpha) phi + alpha theta``.

    alpha weights the *student*: with the default 0.99 the teacher is the student of at most
    ``sync_every - 1`` steps ago, not a slow average. The sync happens before the teacher pass of
    steps ``1 + k * sync_every`` (6, 11, 16, ... for 5); during steps 1..sync_every the teacher is
    the start checkpoint. The schedule depends on the step number only, so a resumed run (the
    teacher's weights are in the checkpoint) syncs exactly where an uninterrupted one would.

    On a LoRA student the teacher is a second adapter on the same base and the rule interpolates
    the adapters' factors A and B: exact for alpha = 1 (the snapshot teacher), a close
    approximation at alpha = 0.99; for a slow EMA the average of the factors is not the average of
    the products B @ A that the student's weight changes are.

    Args:
        sync_every: optimizer steps between syncs (authors: 5).
        alpha: weight of the student in each sync (authors: 0.99).
        dtype, fp32_logits: see :class:`~curio.teacher.base.CopyTeacher`.
    """

    syncs = True

    def __init__(self, sync_every: int = 5, alpha: float = 0.99, dtype: str | None = None, fp32_logits: bool = True):
        super().__init__(dtype=dtype, fp32_logits=fp32_logits)
        if sync_every < 1:
            raise ValueError(f"teacher.sync_every must be >= 1, got {sync_every}")
        if not 0 <= alpha <= 1:
            raise ValueError(f"teacher.alpha must be in [0, 1], got {alpha}")
        self.sync_every = sync_every
        self.alpha = alpha
        # A second call for the same step (e.g. once per micro-batch) must not sync twice.
        self._last_synced_step = 0

    def is_sync_step(self, step: int) -> bool:
        """Whether the teacher syncs before optimizer step ``step`` (1-indexed)."""
        return step > 1 and (step - 1) % self.sync_every == 0

    def before_optimizer_step(self, step: int, student: nn.Module) -> bool:
        if not self.is_sync_step(step) or step == self._last_synced_step:
            return False
        # phi <- (1 - alpha) phi + alpha theta, over parameters and floating buffers (of the
        # adapters only, on a LoRA student).
        lerp_(*self.paired_with(student), self.alpha)
        self._last_synced_step = step
        return True
