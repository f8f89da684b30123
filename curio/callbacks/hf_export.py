"""Export the trained model in Hugging Face format at the end of training."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback

from curio.export import export_hf, full_state_dict, is_sharded
from curio.lora import export_adapter, has_lora, merged_state_dict

log = logging.getLogger(__name__)


class RunEndedShort(RuntimeError):
    """Lightning's loop ended a run before its planned optimizer steps, and nothing asked it to stop."""


def check_ran_to_the_end(trainer: L.Trainer, planned_steps: int | None) -> None:
    """A run that ends must have taken at least ``planned_steps`` optimizer steps, unless a
    callback asked it to stop (``trainer.should_stop``: early stopping, ``trainer.max_time``).

    The loop's own bookkeeping is not evidence: a checkpoint Lightning restores wrongly makes it
    count epochs as done that never ran (``curio.callbacks.checkpoint``), and the run would export
    a model that trained two thirds of its steps and exit 0; resumed again, the loop would not
    even start. So the check runs when ``fit`` ends, before the export (:class:`HFExport`); a
    failed run keeps its checkpoints. More steps than planned are let pass: an RL run resumed from
    ``last-good.ckpt``, written within a rollout step, redoes that rollout step's optimizer steps.

    Raises:
        RunEndedShort: with both step counts and the checkpoint folder.
    """
    if planned_steps is None or trainer.global_step >= planned_steps:
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


class HFExport(Callback):
    """Writes ``<trainer.default_root_dir>/<dirname>/`` on rank 0 when ``fit`` ends.

    At the end of ``fit``, not of the training loop: a run resumed after it had already trained
    to its last step (killed during this export, say) skips the loop and still writes the export.
    A pre-empted or failed run ends ``fit`` with an exception and writes none, and so does a run
    that took fewer optimizer steps than it planned (:func:`check_ran_to_the_end`).

    The tokenizer comes from the datamodule, so the export carries the exact chat template the
    model was trained with. With FSDP2 (``trainer=fsdp``) every rank takes part in gathering the
    full weights (one tensor at a time, onto rank 0's CPU) and rank 0 alone writes one
    consolidated checkpoint; with DDP or one device, rank 0 writes its own (whole) copy.

    A LoRA run (``model.lora.rank > 0``) exports the merged model to ``<dirname>/`` (a plain
    checkpoint) and the student's adapter alone, in peft's format, to ``<adapter_dirname>/``
    beside it.
    """

    def __init__(self, dirname: str = "hf", dtype: str | None = None, adapter_dirname: str = "adapter"):
        self.dirname = dirname
        self.adapter_dirname = adapter_dirname
        self.dtype = dtype
        self.path: Path | None = None

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        check_ran_to_the_end(trainer, getattr(pl_module, "planned_steps", None))
        model = pl_module.model
        state = full_state_dict(model) if is_sharded(model) else None  # a collective: all ranks
        if trainer.is_global_zero:
            tokenizer = trainer.datamodule.tokenizer
            out = Path(trainer.default_root_dir) / self.dirname
            if has_lora(model):
                state = state if state is not None else model.state_dict()
                adapter = export_adapter(model, state, out.with_name(self.adapter_dirname))
                log.info("Exported the LoRA adapter to %s", adapter)
                state = merged_state_dict(model, state)
            self.path = export_hf(model, tokenizer, out, self.dtype, state_dict=state)
            log.info("Exported the Hugging Face checkpoint to %s", self.path)
        del state
        # The other ranks wait, so that a caller (or a job scheduler) sees the export once fit returns.
        trainer.strategy.barrier("hf_export")
