"""The interface every training objective implements.

A loss never sees the full ``[batch, seq, vocab]`` logits. The LightningModule hands it the final
hidden states at the loss positions only, plus the output layer; the loss projects them to logits
chunk by chunk (``chunk_size`` tokens at a time), so at most ``chunk_size x vocab`` float32 logits
exist at once. Each chunk runs under activation checkpointing, so its logits are freed after the
forward pass and recomputed in the backward pass.

A new loss subclasses :class:`TokenLoss` and implements :meth:`TokenLoss.token_losses`, a pure
function of one chunk of float32 logits. That is one file plus one YAML in ``conf/loss/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

Aggregation = Literal["step_token_mean", "micro_batch_token_mean"]
AGGREGATIONS: tuple[str, ...] = ("step_token_mean", "micro_batch_token_mean")


@dataclass
class LossInputs:
    """One micro-batch, restricted to its loss positions.

    Attributes:
        hidden: ``[N, H]`` student final hidden states at the N loss positions (differentiable).
        targets: ``[N]`` gold next-token ids.
        head: the student's output layer, mapping ``[n, H]`` to ``[n, V]`` logits.
        normalizer: the per-token losses are summed and divided by this (see ``aggregation``).
        teacher_hidden: ``[N, H]`` teacher hidden states at the same positions (no grad), or None.
        teacher_head: the teacher's output layer, or None.
        teacher_is_student: the live teacher: the teacher's logits are the student's own, detached.
            The loss then reduces each chunk's student logits to the teacher's statistics instead
            of projecting ``teacher_hidden`` again (one output projection per chunk saved; the
            values are identical), and ``teacher_hidden`` / ``teacher_head`` stay None.
    """

    hidden: Tensor
    targets: Tensor
    head: nn.Module
    normalizer: Tensor | float = 1.0
    teacher_hidden: Tensor | None = None
    teacher_head: nn.Module | None = None
    teacher_is_student: bool = False


@dataclass
class LossOutput:
    """A scalar loss plus per-token diagnostics.

    Attributes:
        loss: scalar, ``sum_t loss_t / normalizer``.
        token_metrics: name -> ``[N]`` detached per-token values (e.g. ``ce``, ``entropy``, ``tau``).
            The trainer logs their token mean over the optimizer step, and quantiles where asked.
    """

    loss: Tensor
    token_metrics: dict[str, Tensor] = field(default_factory=dict)


class TokenLoss(nn.Module):
    """Base class: a per-token objective summed over loss positions.

    Args:
        chunk_size: tokens per chunk of the output projection; ``None`` or 0 computes all loss
            positions in one piece (the plain path, used by tests as the reference).
        aggregation: ``step_token_mean`` divides by the number of loss tokens in the whole
            optimizer step (all micro-batches, all ranks: independent of the hardware layout);
            ``micro_batch_token_mean`` takes each micro-batch's token mean and averages those
            (the CurioSFT authors' choice).
    """

    #: True when the loss needs teacher hidden states (the trainer then builds a teacher).
    needs_teacher: bool = False

    def __init__(self, chunk_size: int | None = 1024, aggregation: Aggregation = "step_token_mean"):
        super().__init__()
        if chunk_size is not None and chunk_size < 0:
            raise ValueError(f"loss.chunk_size must be >= 0 or null, got {chunk_size}")
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"loss.aggregation must be one of {list(AGGREGATIONS)}, got {aggregation!r}")
        self.chunk_size = chunk_size or None
        self.aggregation = aggregation

    def teacher_stats(
        self, teacher_logits: Tensor, targets: Tensor, teacher_entropy: Tensor | None = None
    ) -> dict[str, Tensor]:
        """Reduce one chunk of teacher logits to per-token values, under ``no_grad``.

        Runs before the student's chunk so that only ``[n]`` vectors (never ``[n, V]`` logits)
        are kept for the backward pass.

        Args:
            teacher_logits: ``[n, V]`` float32 teacher logits.
            targets: ``[n]`` gold token ids.
            teacher_entropy: ``[n]`` full-vocabulary entropy of ``teacher_logits`` when the caller
                already has it (the live teacher: the student's own), else None.

        Returns:
            ``{name: [n]}``, e.g. the teacher's gold log-probability and temperature. Every entry
            is also logged as a per-token metric.
        """
        return {}

    def token_losses(
        self, logits: Tensor, targets: Tensor, teacher: dict[str, Tensor]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Per-token loss of one chunk.

        Args:
            logits: ``[n, V]`` float32 student logits (differentiable).
            targets: ``[n]`` gold token ids.
            teacher: the output of :meth:`teacher_stats` for this chunk (empty without a teacher).

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
            return LossOutput(loss=zero, token_metrics={})
        size = self.chunk_size or n_tokens
        losses: list[Tensor] = []
        metrics: dict[str, list[Tensor]] = {}
        for start in range(0, n_tokens, size):
            sl = slice(start, start + size)
            teacher: dict[str, Tensor] = {}
            if inputs.teacher_hidden is not None:
                with torch.no_grad():
                    teacher_logits = _project(inputs.teacher_head, inputs.teacher_hidden[sl])
                    teacher = self.teacher_stats(teacher_logits, targets[sl])
                    del teacher_logits
            # Values the chunk computes without gradient on its first run, reused when activation
            # checkpointing runs it again in the backward pass (they cannot have changed).
            first_run: dict[str, Any] = {}
            args = (hidden[sl], targets[sl], teacher, inputs.head, inputs.teacher_is_student, first_run)
            if self.chunk_size is None or not torch.is_grad_enabled():
                chunk_loss, chunk_metrics = self._chunk(*args)
            else:
                chunk_loss, chunk_metrics = checkpoint(self._chunk, *args, use_reentrant=False)
            losses.append(chunk_loss)
            teacher = first_run.get("teacher", teacher)
            for name, value in {**teacher, **chunk_metrics}.items():
                metrics.setdefault(name, []).append(value)
        token_loss, token_metrics = self.finish(
            torch.cat(losses), {k: torch.cat(v) for k, v in metrics.items()}
        )
        return LossOutput(loss=token_loss.sum() / inputs.normalizer, token_metrics=token_metrics)

    def _chunk(
        self, hidden: Tensor, targets: Tensor, teacher: dict[str, Tensor], head: nn.Module,
        teacher_is_student: bool, first_run: dict[str, Any],
    ) -> tuple[Tensor, dict[str, Tensor]]:
        logits = _project(head, hidden)
        if teacher_is_student:
            if "teacher" not in first_run:
                with torch.no_grad():
                    # The student's entropy is the teacher's: computed once, used by both.
                    first_run["entropy"] = entropy(logits)
                    first_run["teacher"] = self.teacher_stats(logits.detach(), targets, first_run["entropy"])
            teacher = first_run["teacher"]
        loss, metrics = self.token_losses(logits, targets, teacher)
        metrics = {k: v.detach() for k, v in metrics.items()}
        if "entropy" not in metrics:  # a loss that already has the student entropy supplies it
            if "entropy" not in first_run:
                with torch.no_grad():
                    first_run["entropy"] = entropy(logits)
            metrics["entropy"] = first_run["entropy"]
        return loss, metrics


def _project(head: nn.Module, hidden: Tensor) -> Tensor:
    """Output projection of one chunk, upcast to float32 (whatever the autocast/param dtype)."""
    return head(hidden).float()


def entropy(logits: Tensor) -> Tensor:
    """``[n, V] -> [n]`` entropy of ``softmax(logits)`` in nats, without keeping extra copies."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


def gold_logprob(logits: Tensor, targets: Tensor) -> Tensor:
    """``[n, V], [n] -> [n]`` log-softmax of the logits at the gold tokens (differentiable)."""
    return logits.gather(-1, targets[:, None]).squeeze(-1) - torch.logsumexp(logits, dim=-1)
