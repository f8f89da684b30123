"""What the SFT and the RL module share about a run's optimizer steps and its checkpoints.

- :class:`GradientGuard`: the authors' rule for a non-finite gradient (skip the update) and the
  stop after too many skips in a row, with the last finite step's weights saved.
- :class:`ResumableRunState`: the LightningModule hooks that put into a checkpoint what a resumed
  run needs beyond Lightning's own state (weights, a teacher's too since it is a submodule,
  optimizer, schedule, loops, data position): the skipped-step count and the random states. A LoRA
  run's checkpoint leaves out the frozen base. And the check that a run which ends trained all the
  optimizer steps it planned (:func:`check_ran_to_the_end`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from curio.callbacks.checkpoint import check_resumable
from curio.errors import TrainingDiverged
from curio.lora import leave_out_frozen_base, restore_frozen_base
from curio.rng import restore_rng, rng_state

log = logging.getLogger(__name__)


class GradientGuard:
    """Skips optimizer steps whose gradient norm is not finite and stops a run that keeps diverging.

    Args:
        max_consecutive: stop after this many optimizer steps in a row were skipped.
        config_key: the setting that holds ``max_consecutive``, named in the error.
    """

    def __init__(self, max_consecutive: int, config_key: str):
        self.max_consecutive = max_consecutive
        self.config_key = config_key
        self.skipped = 0  # over the whole run, resumes included (checkpoints keep it)
        # Not in checkpoints: a run stopped after max_consecutive skips must not stop its own
        # resumption (with a lower lr, say) before its first step.
        self.consecutive = 0

    def grad_norm(self, model: nn.Module, step: int) -> Tensor:
        """The total 2-norm of ``model``'s gradients (``step``: the 1-based optimizer step, for the
        log). When it is not finite every gradient is dropped, so the optimizer skips the update
        (AdamW leaves parameters without a gradient alone), and the skip is counted."""
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        norm = torch.nn.utils.get_total_norm(grads, norm_type=2.0) if grads else torch.tensor(0.0)
        if torch.isfinite(norm):
            self.consecutive = 0
            return norm
        for p in model.parameters():
            p.grad = None
        self.skipped += 1
        self.consecutive += 1
        log.warning("step %d: non-finite gradient norm, update skipped", step)
        return norm

    def stop_if_diverged(self, trainer: L.Trainer, model: nn.Module) -> None:
        """After ``max_consecutive`` skips in a row: save the weights (no update happened since the
        last finite step, so they are its weights) to ``checkpoints/last-good.ckpt`` and raise.

        Raises:
            TrainingDiverged: names the limit's setting, the saved file and how to resume.
        """
        if self.consecutive < self.max_consecutive:
            return
        path = Path(trainer.default_root_dir) / "checkpoints" / "last-good.ckpt"
        trainer.save_checkpoint(path)
        raise TrainingDiverged(
            f"{self.consecutive} optimizer steps in a row had a non-finite gradient norm (limit "
            f"{self.config_key}={self.max_consecutive}); saved the weights of the last finite step (largest "
            f"|w| = {_largest_weight(model):.3g}) to {path}: lower optim.lr or check the data, then resume "
            f"with ckpt_path={path}"
        )


def _largest_weight(model: nn.Module) -> float:
    """max |w| over ``model``'s parameters (this rank's shards under FSDP2)."""
    from torch.distributed.tensor import DTensor

    local = [p.to_local() if isinstance(p, DTensor) else p for p in model.parameters()]
    return max((float(p.detach().abs().max()) for p in local if p.numel()), default=0.0)


class RunEndedShort(RuntimeError):
    """Lightning's loop ended a run before its planned optimizer steps, and nothing asked it to stop."""


def check_ran_to_the_end(trainer: L.Trainer, planned_steps: int | None) -> None:
    """A run whose training loop ends must have taken ``planned_steps`` optimizer steps, unless a
    callback asked it to stop (``trainer.should_stop``: early stopping, ``trainer.max_time``).

    The loop's own bookkeeping is not evidence: a checkpoint Lightning restores wrongly makes it
    count epochs as done that never ran (``curio.callbacks.checkpoint``), and the run would export
    a model that trained two thirds of its steps and exit 0. Raised here, in ``on_train_end``,
    the run fails before the Hugging Face export; its checkpoints stay.

    Raises:
        RunEndedShort: with both step counts and the checkpoint folder.
    """
    if planned_steps is None or trainer.global_step == planned_steps:
        return
    if trainer.should_stop:
        log.warning("Stopped at optimizer step %d of %d: a callback asked to stop", trainer.global_step,
                    planned_steps)
        return
    raise RunEndedShort(
        f"the training loop ended after {trainer.global_step} optimizer steps of the {planned_steps} planned "
        f"(trainer.max_steps / max_epochs), with no stop asked for; the Hugging Face export is not written. "
        f"The checkpoints in {Path(trainer.default_root_dir) / 'checkpoints'} are kept: this is a defect "
        "(of resuming, most likely), please report it with the run's train.log"
    )


class ResumableRunState:
    """Checkpoint hooks for a LightningModule with a ``model`` and a ``gradient_guard``, placed
    before ``L.LightningModule`` among its bases; and the end-of-training check of the run's length."""

    model: nn.Module
    gradient_guard: GradientGuard
    #: The run's length in optimizer steps (:func:`curio.train.optimizer_steps`), set by
    #: :func:`curio.train.fit`. None (a module fitted some other way): the length is not checked.
    planned_steps: int | None = None

    def on_train_end(self) -> None:
        check_ran_to_the_end(self.trainer, self.planned_steps)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["curio"] = {"skipped_steps": self.gradient_guard.skipped, "rng": rng_state()}
        leave_out_frozen_base(self, checkpoint)  # a LoRA run: adapters, not a second copy of the base

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        check_resumable(checkpoint)
        restore_frozen_base(self, checkpoint)
        state = checkpoint.get("curio")
        if state is not None:
            self.gradient_guard.skipped = state["skipped_steps"]
            restore_rng(state["rng"])
