"""A slow exponential moving average of the student (spec section 4, ``ema``)."""

from __future__ import annotations

from curio.teacher.lagged import LaggedTeacher


class EmaTeacher(LaggedTeacher):
    """``phi <- (1 - alpha) phi + alpha theta`` before every optimizer step from the second on.

    The lagged rule with ``sync_every = 1`` and a small alpha: a slow shadow of the student.

    Args:
        alpha: weight of the student in each update (e.g. 0.01).
        dtype, fp32_logits: see :class:`~curio.teacher.base.CopyTeacher`.
    """

    def __init__(self, alpha: float = 0.01, dtype: str | None = None, fp32_logits: bool = True):
        super().__init__(sync_every=1, alpha=alpha, dtype=dtype, fp32_logits=fp32_logits)
