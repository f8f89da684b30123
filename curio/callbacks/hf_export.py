"""Export the trained model in Hugging Face format at the end of training."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback

from curio.export import export_hf, full_state_dict, is_sharded
from curio.lora import export_adapter, has_lora, merged_state_dict

log = logging.getLogger(__name__)


class HFExport(Callback):
    """Writes ``<trainer.default_root_dir>/<dirname>/`` on rank 0 when ``fit`` ends.

    At the end of ``fit``, not of the training loop: a run resumed after it had already trained
    to its last step (killed during this export, say) skips the loop and still writes the export.
    A pre-empted or failed run ends ``fit`` with an exception and writes none.

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
