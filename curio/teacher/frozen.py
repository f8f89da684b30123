"""The start model, never synced (spec section 4, ``frozen``)."""

from curio.teacher.base import Teacher


class FrozenTeacher(Teacher):
    """A frozen copy of the start checkpoint for the whole run.

    Args:
        dtype: see :class:`~curio.teacher.base.Teacher`.
    """
