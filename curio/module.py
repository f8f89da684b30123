"""The LightningModule: a Hugging Face causal LM trained with a pluggable per-token loss.

It does not know which loss it runs. Each step it (1) runs the decoder to get hidden states,
(2) keeps the loss positions only, (3) asks the teacher, if the loss has one, for its view of
those positions, (4) hands both to the loss, which projects logits chunk by chunk and returns the
summed per-token loss, and (5) turns that sum into the step's token mean (the aggregation).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from curio.aggregation import Aggregation
from curio.data.collate import IGNORE, SFTBatch
from curio.errors import ConfigError
from curio.losses.base import LossInputs, LossOutput, TokenLoss
from curio.run_state import GradientGuard, ResumableRunState
from curio.step_metrics import TokenMetricWindow
from curio.teacher import Teacher


class SFTModule(ResumableRunState, L.LightningModule):
    """Args:
    model: a ``transformers`` causal LM (weights in their master dtype, usually float32).
    loss: a :class:`~curio.losses.TokenLoss`.
    optimizer: ``params -> Optimizer`` (a Hydra ``_partial_``).
    scheduler: ``optimizer -> LRScheduler`` stepped every optimizer step, or None.
    teacher: the loss's teacher (see :func:`curio.objective.build_objective`), or None.
    aggregation: how summed token losses become the step's loss (:class:`~curio.aggregation.Aggregation`).
    gradient_checkpointing: recompute each decoder layer's activations in the backward pass.
    max_consecutive_skips: stop the run after this many optimizer steps in a row were skipped
        because the gradient norm was not finite.
    """

    def __init__(
        self,
        model: nn.Module,
        loss: TokenLoss,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        teacher: Teacher | None = None,
        aggregation: str = "step_token_mean",
        gradient_checkpointing: bool = False,
        max_consecutive_skips: int = 10,
    ):
        super().__init__()
        self.model = model
        self.loss_fn = loss
        self.teacher = teacher
        self.aggregation = Aggregation(aggregation)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.gradient_guard = GradientGuard(max_consecutive_skips, "module.max_consecutive_skips")
        self.model.config.use_cache = False
        if gradient_checkpointing:
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.train_window = TokenMetricWindow()
        self.val_window = TokenMetricWindow()
        self._last_step_time: float | None = None

    # ----------------------------------------------------------------------------------- setup
    def configure_model(self) -> None:
        # Runs before a checkpoint is restored, so a resumed run then overwrites these weights
        # with the saved teacher (and so has the teacher it would have had).
        if self.teacher is not None:
            self.teacher.attach(self.model)
        # FSDP2 (trainer=fsdp): shard student and teacher copy alike, after the copy is taken.
        strategy = self._trainer.strategy if self._trainer is not None else None
        if isinstance(strategy, L.pytorch.strategies.ModelParallelStrategy):
            from curio.parallel import FSDP2Strategy

            if not isinstance(strategy, FSDP2Strategy):
                raise ConfigError("for sharded training use trainer=fsdp (curio.parallel.FSDP2Strategy)")
            strategy.shard(self.model, getattr(self.teacher, "model", None))

    def configure_optimizers(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = self.optimizer_factory(params)
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ------------------------------------------------------------------------------- the step
    def compute_loss(self, batch: SFTBatch) -> LossOutput:
        """The summed per-token loss of one micro-batch, and its per-token metrics."""
        hidden = self._hidden(self.model, batch)
        mask = batch.labels != IGNORE
        inputs = LossInputs(hidden=hidden[mask], targets=batch.labels[mask], head=self.model.get_output_embeddings())
        if self.teacher is not None:
            inputs.teacher = self.teacher.at_loss_positions(batch.model_inputs, mask, inputs.hidden, inputs.head)
        return self.loss_fn(inputs)

    @staticmethod
    def _hidden(model: nn.Module, batch: SFTBatch) -> Tensor:
        """``[B, T, H]`` final hidden states: the decoder without the output layer."""
        return model.base_model(**batch.model_inputs, use_cache=False).last_hidden_state

    def on_train_batch_start(self, batch: SFTBatch, batch_idx: int) -> None:
        if batch_idx % self.trainer.accumulate_grad_batches == 0 and self.teacher is not None:
            # The 1-indexed optimizer step about to run (spec section 4 counts steps from 1).
            self.teacher.before_optimizer_step(self.global_step + 1, self.model)

    def training_step(self, batch: SFTBatch, batch_idx: int) -> Tensor:
        # Counts stay tensors: an int() here would stall the GPU every micro-batch.
        loss_tokens = (batch.labels != IGNORE).sum()
        out = self.compute_loss(batch)
        loss = out.loss_sum / self.aggregation.divisor(batch.step_loss_tokens, loss_tokens, self._micro_batches_per_step)
        # The logged loss is the step's loss: each micro-batch's share, summed over the window.
        share = loss.detach() / self._micro_batches_per_step
        self.train_window.add(out.token_metrics, share, batch.attention_mask.sum(), loss_tokens)
        return loss

    @property
    def _micro_batches_per_step(self) -> int:
        """Micro-batches in one optimizer step over all ranks (what Lightning and DDP divide by)."""
        return self.trainer.accumulate_grad_batches * self.trainer.world_size

    def on_fit_start(self) -> None:
        # The student trains in train mode (its dropout, LoRA's too) whatever mode it was built in:
        # from_pretrained returns a model in eval mode, and Lightning keeps the modes it finds.
        self.model.train()

    def on_train_start(self) -> None:
        self._last_step_time = time.perf_counter()

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        grad_norm = self.gradient_guard.grad_norm(self.model, self.global_step + 1)
        now = time.perf_counter()
        metrics = self.train_window.compute(self._reduce_sum, "train")
        elapsed = now - (self._last_step_time or now)
        self._last_step_time = now
        metrics["train/tokens_per_sec"] = metrics.pop("train/tokens") / elapsed if elapsed > 0 else 0.0
        metrics.update({
            "train/grad_norm": float(grad_norm),
            "train/lr": optimizer.param_groups[0]["lr"],
            "train/skipped_steps": float(self.gradient_guard.skipped),
        })
        self.train_window.reset()
        self.log("train_loss", metrics["train/loss"], prog_bar=True, logger=False)
        self.log_dict(metrics, on_step=True, on_epoch=False)
        self.gradient_guard.stop_if_diverged(self.trainer, self.model)

    # --------------------------------------------------------------------------- validation
    def validation_step(self, batch: SFTBatch, batch_idx: int) -> None:
        out = self.compute_loss(batch)  # a sum: divided by all val tokens at the end
        self.val_window.add(out.token_metrics, out.loss_sum, batch.attention_mask.sum(), (batch.labels != IGNORE).sum())

    def on_validation_epoch_end(self) -> None:
        metrics = self.val_window.compute(self._reduce_sum, "val")
        metrics["val/loss"] = metrics["val/loss"] / max(metrics["val/loss_tokens"], 1.0)
        metrics.pop("val/tokens")
        self.val_window.reset()
        self.log_dict(metrics, on_step=False, on_epoch=True)

    def _reduce_sum(self, tensor: Tensor) -> Tensor:
        if self.trainer.world_size > 1:
            return self.trainer.strategy.reduce(tensor, reduce_op="sum")
        return tensor

