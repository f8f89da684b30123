"""What every teacher offers the training loop, and the teacher that is a copy of the student."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from curio.dtypes import parse_dtype
from curio.errors import ConfigError
from curio.losses.base import StudentChunk, TeacherChunk, TeacherLogits
from curio.lora import STUDENT, TEACHER, active_adapter, adapter_tensors, add_teacher_adapter, has_lora
from curio.ops import project
from curio.teacher.sync import paired_tensors


class Teacher(nn.Module):
    """A teacher for losses that read one (``loss.needs_teacher``; spec section 4).

    The training loop calls, in this order:

    1. :meth:`attach` once, with the student at its start weights (before any sharding, so that
       a copy can be sharded like the student);
    2. :meth:`before_optimizer_step` before the teacher pass of every optimizer step;
    3. :meth:`at_loss_positions` every micro-batch: the teacher at the loss positions, as the loss
       reads it (:class:`~curio.losses.base.TeacherLogits`).

    Args:
        fp32_logits: compute the teacher's logits (from which the loss takes tau, the gate
            entropy and log q) with the output projection in float32, outside autocast: spec
            section 5's intended math. False projects in the compute dtype (bf16 under
            ``trainer=gpu``) and upcasts afterwards, as the authors' bf16 run did.
    """

    def __init__(self, fp32_logits: bool = True):
        super().__init__()
        self.fp32_logits = fp32_logits

    def attach(self, student: nn.Module) -> None:
        """Called once with the student at its start weights; the default keeps nothing."""

    def before_optimizer_step(self, step: int, student: nn.Module) -> bool:
        """Update the teacher before the teacher pass of optimizer step ``step`` (1-indexed).

        Returns:
            whether the teacher changed.
        """
        return False

    def at_loss_positions(
        self, model_inputs: dict[str, Tensor], mask: Tensor, student_hidden: Tensor, student_head: nn.Module
    ) -> TeacherLogits:
        """The teacher at one micro-batch's loss positions.

        Args:
            model_inputs: what the student's decoder was called with (``input_ids``,
                ``attention_mask``, ...): a teacher model sees exactly the student's layout.
            mask: ``[B, T]`` bool, the loss positions.
            student_hidden: ``[N, H]`` the student's final hidden states there.
            student_head: the student's output layer.
        """
        raise NotImplementedError


class CopyTeacher(Teacher):
    """A frozen copy of the student, taken at :meth:`attach`, never synced (subclasses sync it).

    The copy stays in eval mode (no dropout) even when the LightningModule calls ``train()``, and
    none of its parameters requires grad, so an optimizer built from the trainable parameters
    never sees it. Being a submodule, it is in the state dict and therefore in every checkpoint.

    On a LoRA student (``model.lora.rank > 0``) the copy is of the adapter only, never of the
    base (:mod:`curio.lora`): a teacher that syncs is a second adapter on the student's own
    base weights (saved with the student's state); a teacher that never syncs is the student with
    its adapter switched off, the start model exactly.

    Args:
        dtype: ``null`` (keep the student's dtype) or ``float32`` / ``bfloat16`` / ``float16``
            for the copy's parameters. Buffers keep their dtype (e.g. rotary frequencies stay
            float32), so the teacher's positions match the student's.
        fp32_logits: see :class:`Teacher`.
    """

    #: Whether the teacher ever moves from the start model (the subclasses that sync say so).
    syncs = False

    def __init__(self, dtype: str | None = None, fp32_logits: bool = True):
        super().__init__(fp32_logits=fp32_logits)
        self.param_dtype = parse_dtype(dtype, "teacher.dtype")
        self.model: nn.Module | None = None  # the copy (registered: saved in checkpoints)
        self._adapter_run: AdapterRun | None = None  # or, on a LoRA student, how to run the student

    def attach(self, student: nn.Module) -> None:
        """Take a frozen copy of ``student`` (a ``transformers.PreTrainedModel``), once."""
        if self.model is not None or self._adapter_run is not None:  # configure_model runs again for validate/test
            return
        if has_lora(student):
            if self.param_dtype is not None:
                raise ConfigError(f"teacher.dtype={self.param_dtype}: with model.lora the teacher runs on the "
                                  "student's own base weights; leave teacher.dtype null")
            if self.syncs:
                add_teacher_adapter(student)
            self._adapter_run = AdapterRun(student, TEACHER if self.syncs else None)
            return
        model = copy.deepcopy(student)
        model.requires_grad_(False)
        for p in model.parameters():
            p.grad = None
            if self.param_dtype is not None:
                # Reassigning .data keeps tied weights tied (one Parameter, cast once).
                p.data = p.data.to(self.param_dtype)
        self.model = model.eval()

    @torch.no_grad()
    def at_loss_positions(
        self, model_inputs: dict[str, Tensor], mask: Tensor, student_hidden: Tensor, student_head: nn.Module
    ) -> TeacherLogits:
        if self._adapter_run is not None:
            hidden, head = self._adapter_run.decoder_pass(model_inputs)
        elif self.model is not None:
            # base_model is the decoder without the output layer, as for the student's own pass.
            hidden = self.model.base_model(**model_inputs, use_cache=False).last_hidden_state
            head = self.model.get_output_embeddings()
        else:
            raise RuntimeError("teacher.at_loss_positions called before teacher.attach(student)")
        return ProjectedLogits(hidden[mask], head, self.fp32_logits)

    def paired_with(self, student: nn.Module) -> tuple[list[Tensor], list[Tensor]]:
        """The teacher's tensors and the student's they sync toward, in matching order."""
        if self._adapter_run is not None:
            return adapter_tensors(student, TEACHER), adapter_tensors(student, STUDENT)
        if self.model is None:
            raise RuntimeError("the teacher syncs before teacher.attach(student)")
        return paired_tensors(self.model, student)

    def train(self, mode: bool = True) -> CopyTeacher:
        super().train(mode)
        if self.model is not None:
            self.model.eval()
        return self


class AdapterRun:
    """A LoRA student run as its teacher: with the adapter ``adapter`` (None: adapters off), in
    eval mode, no grad (:func:`curio.lora.active_adapter`), on the student's own base weights.

    Holds the student in a list, so that it is not a second registered submodule of the teacher.
    """

    def __init__(self, student: nn.Module, adapter: str | None):
        self._student = [student]
        self.adapter = adapter

    def decoder_pass(self, model_inputs: dict[str, Tensor]) -> tuple[Tensor, nn.Module]:
        """``[B, T, H]`` final hidden states, and the output layer to project them with."""
        student = self._student[0]
        with active_adapter(student, self.adapter):
            hidden = student.base_model(**model_inputs, use_cache=False).last_hidden_state
        # The output layer is never adapted (apply_lora refuses it): the student's is the teacher's.
        return hidden, student.get_output_embeddings()


@dataclass
class ProjectedLogits:
    """A teacher's hidden states at the loss positions, projected chunk by chunk by its own head."""

    hidden: Tensor  # [N, H], no grad
    head: nn.Module
    fp32: bool

    def __call__(self, rows: slice, student: StudentChunk) -> TeacherChunk:
        return TeacherChunk(project(self.head, self.hidden[rows], float32=self.fp32))
