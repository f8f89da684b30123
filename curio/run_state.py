"""What the SFT and the RL module share about a run's optimizer steps and its checkpoints.

- :class:`GradientGuard`: the authors' rule for a non-finite gradient (skip the update) and the
  stop after too many skips in a row, with the last finite step's weights saved.
- :class:`ResumableRunState`: the LightningModule hooks that put into a checkpoint what a resumed
  run needs beyond Lightning's own state (weights, a teacher's too since it is a submodule,
  optimizer, schedule, loops, data position): the skipped-step count and the random states. A LoRA
  run's checkpoint leaves out the frozen base.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from curio.callbacks.checkpoint import check_resumable
from curio.errors import ConfigError, TrainingDiverged
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


#: The settings that decide whether a run builds a part beside its model (shown when they differ).
PART_SETTINGS = {"teacher": "loss / teacher", "reference": "rl.reference"}


def check_same_parts(module: nn.Module, checkpoint: dict[str, Any]) -> None:
    """Refuse, in one line, a checkpoint that holds the weights of other parts than ``module`` has
    (a teacher, an RL reference model): written with other settings, it would otherwise fail
    Lightning's strict load with a list of every weight's name. A sharded checkpoint (no
    ``state_dict`` here) is left to its own loader."""
    weights = checkpoint.get("state_dict")
    if not weights:
        return
    have, want = ({key.split(".", 1)[0] for key in keys} for keys in (weights, module.state_dict()))
    if have == want:
        return
    differences = [f"it holds a {part} that this run does not build ({PART_SETTINGS.get(part, part)})"
                   for part in sorted(have - want)]
    differences += [f"it has no {part}, which this run builds ({PART_SETTINGS.get(part, part)})"
                    for part in sorted(want - have)]
    raise ConfigError(f"ckpt_path: this checkpoint (step {checkpoint.get('global_step')}) was written with other "
                      f"settings: {'; '.join(differences)}; resume with the settings it was trained with (its run "
                      "dir's config_resolved.yaml)")


class ResumableRunState:
    """Checkpoint hooks for a LightningModule with a ``model`` and a ``gradient_guard``, placed
    before ``L.LightningModule`` among its bases."""

    model: nn.Module
    gradient_guard: GradientGuard
    #: The run's length in optimizer steps (:func:`curio.train.optimizer_steps`), set by
    #: :func:`curio.train.fit`, checked before the export (:class:`~curio.callbacks.HFExport`).
    #: None (a module fitted some other way): not checked.
    planned_steps: int | None = None

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["curio"] = {"skipped_steps": self.gradient_guard.skipped, "rng": rng_state()}
        leave_out_frozen_base(self, checkpoint)  # a LoRA run: adapters, not a second copy of the base

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        check_resumable(checkpoint)
        restore_frozen_base(self, checkpoint)
        check_same_parts(self, checkpoint)
        state = checkpoint.get("curio")
        if state is not None:
            self.gradient_guard.skipped = state["skipped_steps"]
            restore_rng(state["rng"])
