"""The student itself as the teacher (spec section 4, ``live``): no copy, no extra forward."""

from __future__ import annotations

from torch import Tensor, nn

from curio.teacher.base import Teacher


class LiveTeacher(Teacher):
    """The teacher's logits are the student's own at this step, detached.

    The training loop sets ``LossInputs.teacher_is_student``: the loss reduces each chunk of the
    student's logits to the teacher's statistics (detached) in the same projection; this class
    holds no weights.
    """

    is_live = True

    def __init__(self):
        super().__init__(dtype=None)

    @property
    def is_attached(self) -> bool:
        return True

    def attach(self, student: nn.Module) -> None:
        """Nothing to copy."""

    def hidden_states(
        self, input_ids: Tensor, attention_mask: Tensor | None = None, **model_kwargs
    ) -> Tensor:
        raise RuntimeError("a live teacher has no model: use the student's detached hidden states")
