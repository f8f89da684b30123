"""The start model, never synced (spec section 4, ``frozen``)."""

from curio.teacher.base import CopyTeacher


class FrozenTeacher(CopyTeacher):
    """A frozen copy of the start checkpoint for the whole run.

    Args:
        dtype, fp32_logits: see :class:`~curio.teacher.base.CopyTeacher`.
    """
