"""The contract every training objective implements, and the chunked loop that runs it.

A loss never sees the full ``[batch, seq, vocab]`` logits. The LightningModule hands it the final
hidden states at the loss positions only, plus the output layer; the loss projects them to logits
chunk by chunk (``chunk_size`` tokens at a time), so at most ``chunk_size x vocab`` float32 logits
exist at once. Each chunk runs under activation checkpointing, so its logits are freed after the
forward pass and recomputed in the backward pass.

A new loss subclasses :class:`TokenLoss` and implements :meth:`TokenLoss.token_losses`, a pure
function of one chunk of float32 logits (plus :meth:`TokenLoss.teacher_stats` if it reads a
teacher). That is one file plus one YAML in ``conf/loss/``. The loss returns the *sum* of its
per-token losses: how sums become a mean (the aggregation) is the training module's business.

A teacher (``curio.teacher``) hands the loss one object, a :class:`TeacherLogits`: whatever the
teacher is (a lagged copy, the start model, or the student itself), the loss asks it for the
teacher's logits of one chunk and reduces them to per-token values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from curio.ops import entropy, log_softmax, project


@dataclass
class TeacherChunk:
    """The teacher's view of one chunk of loss positions.

    Attributes:
        logits: ``[n, V]`` float32 teacher logits, no gradient.
        entropy: ``[n]`` their full-vocabulary entropy (T = 1) when the teacher already has it
            (the live teacher's is the student's), else None.
    """

    logits: Tensor
    entropy: Tensor | None = None


class StudentChunk:
    """The student at one chunk of loss positions, computed on first use.

    ``logits`` are projected once, with gradient if the loss is being differentiated (whoever asks
    first, the loss or a live teacher); ``entropy`` (no gradient) once per chunk, also across the
    recomputation of activation checkpointing (kept in the chunk's ``no_grad_values``). A teacher
    that does not read the student never makes its logits exist early, so a copy teacher's
    ``[n, V]`` logits are reduced and freed before the student's are projected.
    """

    def __init__(self, head: nn.Module, hidden: Tensor, no_grad_values: dict[str, Any]):
        self._head, self._hidden, self._no_grad_values = head, hidden, no_grad_values
        self._grad = torch.is_grad_enabled()
        self._logits: Tensor | None = None

    @property
    def logits(self) -> Tensor:
        """``[n, V]`` float32 logits."""
        if self._logits is None:
            with torch.set_grad_enabled(self._grad):
                self._logits = project(self._head, self._hidden)
        return self._logits

    @property
    def entropy(self) -> Tensor:
        """``[n]`` full-vocabulary entropy of the logits (T = 1), no gradient."""
        if "entropy" not in self._no_grad_values:
            with torch.no_grad():
                self._no_grad_values["entropy"] = entropy(self.logits)
        return self._no_grad_values["entropy"]


class TeacherLogits(Protocol):
    """A teacher at one micro-batch's loss positions, as the loss reads it: chunk by chunk."""

    def __call__(self, rows: slice, student: StudentChunk) -> TeacherChunk:
        """The teacher's logits at loss positions ``rows``, under ``no_grad``.

        Args:
            rows: the chunk's positions among the micro-batch's N loss positions.
            student: the student at the same positions (a live teacher reads its logits and
                entropy; a teacher model ignores it).
        """


@dataclass
class LossInputs:
    """One micro-batch, restricted to its loss positions.

    Attributes:
        hidden: ``[N, H]`` student final hidden states at the N loss positions (differentiable).
        targets: ``[N]`` target next-token ids (the gold tokens in SFT, the sampled ones in RL).
        head: the student's output layer, mapping ``[n, H]`` to ``[n, V]`` logits.
        teacher: the teacher at these positions, or None (for a loss that reads none).
        token_inputs: name -> ``[N]`` per-token values from outside the model (RL: the advantage,
            the rollout policy's log-probability, the aggregation weight), no gradient.
    """

    hidden: Tensor
    targets: Tensor
    head: nn.Module
    teacher: TeacherLogits | None = None
    token_inputs: dict[str, Tensor] = field(default_factory=dict)


@dataclass
class LossOutput:
    """Summed loss plus per-token diagnostics.

    Attributes:
        loss_sum: scalar, ``sum_t loss_t`` over the N loss positions (not a mean).
        token_metrics: name -> ``[N]`` detached per-token values (e.g. ``ce``, ``entropy``, ``tau``).
            The trainer logs their token mean over the optimizer step, and quantiles where asked.
    """

    loss_sum: Tensor
    token_metrics: dict[str, Tensor] = field(default_factory=dict)


class TokenLoss(nn.Module):
    """Base class: a per-token objective summed over loss positions.

    Args:
        chunk_size: tokens per chunk of the output projection; ``None`` or 0 computes all loss
            positions in one piece (the plain path, used by tests as the reference).
    """

    #: True when the loss reads a teacher (the trainer then builds one; ``conf/teacher/``).
    needs_teacher: bool = False
    #: True when the loss reads the teacher's whole next-token distribution with the student's
    #: gradient (a KL over the vocabulary), not only per-token values: :meth:`token_losses` then
    #: gets ``given["teacher_logprobs"]``, the chunk's ``[n, V]`` float32 teacher log-probabilities,
    #: projected again when activation checkpointing recomputes the chunk (never kept).
    reads_teacher_distribution: bool = False

    def __init__(self, chunk_size: int | None = 1024):
        super().__init__()
        if chunk_size is not None and chunk_size < 0:
            raise ValueError(f"loss.chunk_size must be >= 0 or null, got {chunk_size}")
        self.chunk_size = chunk_size or None

    def teacher_stats(self, teacher: TeacherChunk, targets: Tensor) -> dict[str, Tensor]:
        """Reduce one chunk of teacher logits to per-token values, under ``no_grad``.

        Only these ``[n]`` vectors (never ``[n, V]`` logits) are kept for the backward pass.

        Args:
            teacher: the chunk's teacher logits (and their entropy, when known).
            targets: ``[n]`` gold token ids.

        Returns:
            ``{name: [n]}``, e.g. the teacher's gold log-probability and temperature. Every entry
            is also logged as a per-token metric.
        """
        return {}

    def token_losses(
        self, logits: Tensor, targets: Tensor, given: dict[str, Tensor]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Per-token loss of one chunk.

        Args:
            logits: ``[n, V]`` float32 student logits (differentiable).
            targets: ``[n]`` target token ids.
            given: ``{name: [n]}`` for this chunk: the output of :meth:`teacher_stats` (empty
                without a teacher) and the chunk's slice of ``LossInputs.token_inputs``; plus
                ``teacher_logprobs`` ``[n, V]`` when :attr:`reads_teacher_distribution`.

        Returns:
            ``([n] per-token loss, {name: [n] per-token metric})``; metrics are detached here.
            A loss whose per-token value depends on other tokens of the micro-batch returns
            ``[n, k]`` per-token terms instead and combines them in :meth:`finish`.
        """
        raise NotImplementedError

    def finish(self, losses: Tensor, metrics: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """Combine the per-token output of every chunk once the whole micro-batch is done.

        The hook for losses that cannot be decided chunk by chunk (e.g. a bonus on the top-rho
        tokens by entropy): :meth:`token_losses` returns differentiable ``[n, k]`` terms, and the
        cross-token decision happens here on the concatenation, so the chunked and the plain
        path select the same tokens.

        Args:
            losses: ``[N]`` or ``[N, k]``, the concatenated first outputs of :meth:`token_losses`.
            metrics: name -> ``[N]`` detached per-token metrics gathered so far.

        Returns:
            ``([N] per-token loss, metrics)``; the default returns both unchanged.
        """
        return losses, metrics

    def forward(self, inputs: LossInputs) -> LossOutput:
        hidden, targets = inputs.hidden, inputs.targets
        n_tokens = targets.shape[0]
        if n_tokens == 0:
            # Keep the graph connected to every trainable weight (DDP/FSDP expect gradients).
            zero = hidden.sum() * 0.0 + sum(p.sum() for p in inputs.head.parameters()) * 0.0
            return LossOutput(loss_sum=zero, token_metrics={})
        size = self.chunk_size or n_tokens
        losses: list[Tensor] = []
        metrics: dict[str, list[Tensor]] = {}
        for start in range(0, n_tokens, size):
            rows = slice(start, start + size)
            # Values the chunk computes without gradient on its first run (the teacher's
            # statistics, the student's entropy), reused when activation checkpointing runs it
            # again in the backward pass: they cannot have changed.
            no_grad_values: dict[str, Any] = {}
            token_inputs = {name: values[rows] for name, values in inputs.token_inputs.items()}
            args = (hidden[rows], targets[rows], rows, inputs.head, inputs.teacher, token_inputs, no_grad_values)
            if self.chunk_size is None or not torch.is_grad_enabled():
                chunk_loss, chunk_metrics = self._chunk(*args)
            else:
                chunk_loss, chunk_metrics = checkpoint(self._chunk, *args, use_reentrant=False)
            losses.append(chunk_loss)
            for name, value in chunk_metrics.items():
                metrics.setdefault(name, []).append(value)
        token_loss, token_metrics = self.finish(
            torch.cat(losses), {k: torch.cat(v) for k, v in metrics.items()}
        )
        return LossOutput(loss_sum=token_loss.sum(), token_metrics=token_metrics)

    def _chunk(
        self, hidden: Tensor, targets: Tensor, rows: slice, head: nn.Module,
        teacher: TeacherLogits | None, token_inputs: dict[str, Tensor], no_grad_values: dict[str, Any],
    ) -> tuple[Tensor, dict[str, Tensor]]:
        student = StudentChunk(head, hidden, no_grad_values)
        if teacher is not None and "teacher" not in no_grad_values:
            with torch.no_grad():
                no_grad_values["teacher"] = self.teacher_stats(teacher(rows, student), targets)
        teacher_values = no_grad_values.get("teacher", {})
        given = {**teacher_values, **token_inputs}
        if teacher is not None and self.reads_teacher_distribution:
            with torch.no_grad():
                given["teacher_logprobs"] = log_softmax(teacher(rows, student).logits)
        loss, metrics = self.token_losses(student.logits, targets, given)
        metrics = {**teacher_values, **{k: v.detach() for k, v in metrics.items()}}
        if "entropy" not in metrics:  # a loss that already has the student entropy supplies it
            metrics["entropy"] = student.entropy
        return loss, metrics
