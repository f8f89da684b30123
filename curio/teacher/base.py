"""What every teacher offers the training loop."""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class Teacher(nn.Module):
    """A frozen copy of the student, taken at :meth:`attach`, optionally synced toward it.

    The training loop calls, in this order:

    1. :meth:`attach` once, with the student at its start weights (before any sharding, so that
       the teacher can be sharded like the student);
    2. :meth:`before_optimizer_step` before the teacher pass of every optimizer step;
    3. :meth:`hidden_states` and :attr:`head` to get the teacher's ``[B, T, H]`` final hidden states
       and output layer (the loss projects them to logits chunk by chunk).

    The copy stays in eval mode (no dropout) even when the LightningModule calls ``train()``, and
    none of its parameters requires grad, so an optimizer built from the trainable parameters
    never sees it.

    Args:
        dtype: ``null`` (keep the student's dtype) or ``float32`` / ``bfloat16`` / ``float16``
            for the copy's parameters. Buffers keep their dtype (e.g. rotary frequencies stay
            float32), so the teacher's positions match the student's.
    """

    #: True when the teacher is the student itself (no copy, no extra forward).
    is_live: bool = False

    def __init__(self, dtype: str | None = None):
        super().__init__()
        if dtype is not None and dtype not in _DTYPES:
            raise ValueError(f"teacher.dtype must be null or one of {list(_DTYPES)}, got {dtype!r}")
        self.param_dtype = None if dtype is None else _DTYPES[dtype]
        self.model: nn.Module | None = None

    def attach(self, student: nn.Module) -> None:
        """Take a frozen copy of ``student`` (a ``transformers.PreTrainedModel``)."""
        model = copy.deepcopy(student)
        model.requires_grad_(False)
        for p in model.parameters():
            p.grad = None
            if self.param_dtype is not None:
                # Reassigning .data keeps tied weights tied (one Parameter, cast once).
                p.data = p.data.to(self.param_dtype)
        self.model = model.eval()

    @property
    def is_attached(self) -> bool:
        """Whether :meth:`attach` has run (the loop attaches once, before restoring a checkpoint)."""
        return self.model is not None

    @property
    def head(self) -> nn.Module | None:
        """The teacher's output layer (``[n, H] -> [n, V]``), or None before :meth:`attach`."""
        return None if self.model is None else self.model.get_output_embeddings()

    @torch.no_grad()
    def hidden_states(
        self, input_ids: Tensor, attention_mask: Tensor | None = None, **model_kwargs
    ) -> Tensor:
        """``[B, T] -> [B, T, H]`` the teacher's final hidden states (after the final norm).

        Extra keyword arguments (e.g. ``position_ids`` for packed batches) go to the decoder.
        """
        if self.model is None:
            raise RuntimeError("teacher.hidden_states called before teacher.attach(student)")
        # base_model is the decoder without the output layer, as for the student's own pass.
        out = self.model.base_model(
            input_ids=input_ids, attention_mask=attention_mask, use_cache=False, **model_kwargs
        )
        return out.last_hidden_state

    def before_optimizer_step(self, step: int, student: nn.Module) -> bool:
        """Update the copy before the teacher pass of optimizer step ``step`` (1-indexed).

        Returns:
            whether the teacher changed.
        """
        return False

    def train(self, mode: bool = True) -> Teacher:
        super().train(mode)
        if self.model is not None:
            self.model.eval()
        return self
