"""The student itself as the teacher (spec section 4, ``live``): no copy, no extra forward."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from curio.losses.base import StudentChunk, TeacherChunk, TeacherLogits
from curio.ops import computes_in_float32, project
from curio.teacher.base import Teacher


class LiveTeacher(Teacher):
    """The teacher's logits are the student's own at this step, detached.

    The loss reads them off each chunk of the student's logits (no second decoder pass, no second
    projection), with their entropy, which it computes anyway. Only when the student's projection
    is not float32 (bf16 autocast) and ``fp32_logits`` is set does the teacher project the
    student's hidden states again, in float32. Holds no weights.

    Args:
        fp32_logits: see :class:`~curio.teacher.base.Teacher`.
    """

    def at_loss_positions(
        self, model_inputs: dict[str, Tensor], mask: Tensor, student_hidden: Tensor, student_head: nn.Module
    ) -> TeacherLogits:
        return StudentLogits(student_hidden.detach(), student_head, self.fp32_logits)


@dataclass
class StudentLogits:
    """The student's own chunk logits, detached, as the teacher's."""

    hidden: Tensor  # [N, H] the student's, detached
    head: nn.Module
    fp32: bool

    def __call__(self, rows: slice, student: StudentChunk) -> TeacherChunk:
        hidden = self.hidden[rows]
        if self.fp32 and not computes_in_float32(self.head, hidden):
            return TeacherChunk(project(self.head, hidden, float32=True))
        return TeacherChunk(student.logits.detach(), student.entropy)
