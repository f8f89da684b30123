"""The LightningModule of the RL stage: GRPO on a causal LM, one rollout step per training step.

Each training step, top to bottom:

1. **rollout**: sample G responses for each of this rank's prompts with the current policy
   (``HFGenerator``, or vLLM with the weights synced first), reward them with the grader, and
   centre the rewards within each group (the advantages);
2. **old log-probabilities**: the policy's log-probability of every sampled token. The first
   optimizer step needs none (the policy is still the sampler: its ratio is exactly 1, and its
   forward yields them for the metrics); the micro-batches of later steps are scored without
   gradient before the first step moves the policy, as the update will compute them, with the
   token entropies;
3. **updates**: ``updates_per_rollout`` passes (mu) over the rollout, each cut into
   ``mini_batches`` optimizer steps; a step's token weights come from all its sequences (every
   micro-batch, every rank), so its gradient does not depend on the micro-batching;
4. **metrics** per optimizer step and per rollout step, to the run's loggers.

Optimization is manual (several optimizer steps per training step); the step itself mirrors the
SFT module's: gradient norm, a step whose norm is not finite is skipped (and the run stops after
``max_consecutive_skips``), clipping, optimizer and schedule. Checkpoints fall between training
steps, when no rollout is in flight, so a resumed run continues with the prompts, the sampling
seed and the weights an uninterrupted run would have.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from curio.data.collate import IGNORE
from curio.errors import ConfigError, check_count
from curio.evaluation.sampling import SamplingParams
from curio.losses.base import LossInputs
from curio.ops import chunked_logprobs
from curio.parallel import FSDP2Strategy
from curio.rl.backends import HFRollout, VLLMRollout
from curio.rl.data import Prompt
from curio.rl.policy_loss import PolicyLoss
from curio.rl.rewards import Reward
from curio.rl.rollout import MicroBatch, Rollout, micro_batches, sample_rollout
from curio.rl.weights import check_aggregation, sequence_weights
from curio.run_state import GradientGuard, ResumableRunState
from curio.teacher import Teacher


class GRPOModule(ResumableRunState, L.LightningModule):
    """Args:
    model: the policy, a ``transformers`` causal LM (the SFT export).
    loss: the policy objective (:class:`~curio.rl.policy_loss.PolicyLoss`).
    optimizer: ``params -> Optimizer`` (a Hydra ``_partial_``).
    scheduler: ``optimizer -> LRScheduler`` stepped every optimizer step, or None (constant lr).
    reward: the reward (:class:`~curio.rl.rewards.Reward`).
    sampling: the rollout's sampling (``n`` = G, the group size; temperature, max_new_tokens, ...).
    rollout: what samples the policy (:mod:`curio.rl.backends`: HF generate or a colocated vLLM engine).
    reference: a frozen copy of the start model (``curio.teacher.FrozenTeacher``) for the KL term
        and the logged KL to the start model, or None.
    mini_batches: optimizer steps per pass over a rollout step.
    updates_per_rollout: passes over each rollout step (mu; 1 = on-policy, the authors').
    micro_batch_size: sequences per forward pass.
    scale_by_std: GRPO's advantage scaling by the group's standard deviation (off: Dr.GRPO).
    aggregation: ``token_mean``, ``sequence_mean`` or ``constant`` (``curio/rl/weights.py``).
    max_grad_norm: gradient clipping by norm (null: off).
    max_consecutive_skips: stop after this many optimizer steps in a row had a non-finite norm.
    """

    def __init__(
        self,
        model: nn.Module,
        loss: PolicyLoss,
        optimizer: Callable[..., torch.optim.Optimizer],
        reward: Reward,
        sampling: SamplingParams,
        rollout: HFRollout | VLLMRollout,
        scheduler: Callable[..., Any] | None = None,
        reference: Teacher | None = None,
        mini_batches: int = 1,
        updates_per_rollout: int = 1,
        micro_batch_size: int = 8,
        scale_by_std: bool = True,
        aggregation: str = "sequence_mean",
        max_grad_norm: float | None = 1.0,
        max_consecutive_skips: int = 10,
    ):
        super().__init__()
        check_aggregation(aggregation)
        if loss.kl_coef and reference is None:
            raise ConfigError(f"rl.loss.kl_coef={loss.kl_coef} needs the reference model: set rl.reference=true")
        for key, value in (("rl.mini_batches", mini_batches), ("rl.updates_per_rollout", updates_per_rollout),
                           ("rl.micro_batch_size", micro_batch_size)):
            check_count(key, value)
        self.automatic_optimization = False
        self.model = model
        self.loss_fn = loss
        self.reference = reference
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.reward = reward
        self.sampling = sampling
        self.rollout = rollout
        self.mini_batches = mini_batches
        self.updates_per_rollout = updates_per_rollout
        self.micro_batch_size = micro_batch_size
        self.scale_by_std = scale_by_std
        self.aggregation = aggregation
        self.max_grad_norm = max_grad_norm
        self.gradient_guard = GradientGuard(max_consecutive_skips, "rl.max_consecutive_skips")
        self.model.config.use_cache = False
        # No dropout, ever (as TRL's disable_dropout): the update must score each sampled token as
        # the sampler did, or the first ratio is not 1. Generation keeps this mode too.
        self.model.eval()

    # ----------------------------------------------------------------------------------- setup
    def configure_model(self) -> None:
        if self.reference is not None:
            self.reference.attach(self.model)
        strategy = self._trainer.strategy if self._trainer is not None else None
        if isinstance(strategy, L.pytorch.strategies.ModelParallelStrategy):
            if not isinstance(strategy, FSDP2Strategy):
                raise ConfigError("for sharded training use trainer=fsdp (curio.parallel.FSDP2Strategy)")
            strategy.shard(self.model, getattr(self.reference, "model", None))

    def configure_optimizers(self):
        optimizer = self.optimizer_factory([p for p in self.model.parameters() if p.requires_grad])
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer),
                                                         "interval": "step"}}

    @property
    def steps_per_rollout(self) -> int:
        """Optimizer steps of one training step (one rollout step)."""
        return self.mini_batches * self.updates_per_rollout

    def on_fit_end(self) -> None:
        self.reward.close()
        self.rollout.close()

    def on_exception(self, exception: BaseException) -> None:
        self.reward.close()
        self.rollout.close()

    # ------------------------------------------------------------------------------- the step
    def transfer_batch_to_device(self, batch: list[Prompt], device: torch.device, dataloader_idx: int) -> list[Prompt]:
        return batch  # prompts, not tensors: the rollout builds the tensors on the device

    def training_step(self, prompts: list[Prompt], batch_idx: int) -> None:
        start = time.perf_counter()
        rollout = self._rollout(prompts)
        rollout_s = time.perf_counter() - start

        start = time.perf_counter()
        # mini_batches equal runs of sequences (curio.rl.parts.check_mini_batches), each cut into micro-batches.
        sequences = rollout.sequences()
        size = len(sequences) // self.mini_batches
        steps = [micro_batches(rollout, sequences[i : i + size], self.micro_batch_size, self._pad_id)
                 for i in range(0, len(sequences), size)]
        # The first optimizer step scores its micro-batches with the policy that sampled them, in
        # its own forward: only the later steps' need a pass of their own, before the policy moves.
        later = [[self._old_logprobs(mb) for mb in step] for step in steps[1:]]
        old: list[list[tuple[Tensor, Tensor]]] | None = None  # per step, per micro-batch: (log p, entropy)
        passes = [j for _ in range(self.updates_per_rollout) for j in range(len(steps))]
        for n, j in enumerate(passes):
            step_old = None if old is None else [o[0] for o in old[j]]
            metrics, scored = self._optimizer_step(steps[j], step_old, log_now=n < len(passes) - 1)
            old = old or [scored, *later]
        # The rollout's own metrics share the row of its last optimizer step.
        metrics.update(self._rollout_metrics(rollout, [mb for step in steps for mb in step],
                                             [o for step in old for o in step], rollout_s,
                                             time.perf_counter() - start))
        self._log_metrics(metrics, step=self.global_step - 1)
        self.log("reward", metrics["train/reward_mean"], prog_bar=True, logger=False)
        self.log("entropy", metrics["train/rollout_entropy"], prog_bar=True, logger=False)

    @property
    def _pad_id(self) -> int:
        tokenizer = self.trainer.datamodule.tokenizer
        return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def _rollout(self, prompts: list[Prompt]) -> Rollout:
        datamodule = self.trainer.datamodule
        # A new seed per rollout step, from the step number alone: a resumed run samples what an
        # uninterrupted one would, whatever the random state.
        index = self.global_step // self.steps_per_rollout
        params = SamplingParams(**{**self.sampling.__dict__, "seed": self.sampling.seed * 1_000_003 + index
                                   + 7919 * self.global_rank})
        generator = self.rollout.generator(self.model, datamodule.tokenizer, self.trainer.precision_plugin.forward_context)
        return sample_rollout(prompts, datamodule.grader, generator, params, self.reward, self.scale_by_std)

    def _gathered(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)``, a forward of the policy (and the reference), with their parameters whole:
        under FSDP2 it runs as the forward of every root (``curio/parallel.py``)."""
        strategy = self.trainer.strategy
        if isinstance(strategy, FSDP2Strategy):
            return strategy.run_forward(fn, *args)
        return fn(*args)

    def _hidden(self, mb: MicroBatch) -> tuple[Tensor, Tensor]:
        """``[N, H]`` final hidden states at the loss positions, and the ``[B, T]`` mask."""
        batch = mb.batch.to(self.device)
        hidden = self.model.base_model(**batch.model_inputs, use_cache=False).last_hidden_state
        mask = batch.labels != IGNORE
        return hidden[mask], mask

    @torch.no_grad()
    def _old_logprobs(self, mb: MicroBatch) -> tuple[Tensor, Tensor]:
        """The rollout policy's log-probability and entropy of every loss token of ``mb``."""
        return self._gathered(self._score, mb)

    def _score(self, mb: MicroBatch) -> tuple[Tensor, Tensor]:
        hidden, mask = self._hidden(mb)
        targets = mb.batch.labels.to(self.device)[mask]
        return chunked_logprobs(self.model.get_output_embeddings(), hidden, targets, self.loss_fn.chunk_size,
                                self.loss_fn.temperature)

    def _loss(self, mb: MicroBatch, old: Tensor | None, weights: list[float]) -> tuple[Tensor, dict[str, Tensor]]:
        """The summed, weighted loss of ``mb`` and its per-token metrics (a tuple: FSDP2 finds the
        tensors that will run a backward in a forward's output)."""
        batch = mb.batch.to(self.device)
        hidden, mask = self._hidden(mb)
        head = self.model.get_output_embeddings()
        weight = torch.cat([torch.full((n,), w, device=self.device) for n, w in zip(mb.lengths, weights)])
        given = {"advantage": mb.advantage.to(self.device), "weight": weight}
        if old is not None:
            given["old_logprob"] = old
        inputs = LossInputs(hidden=hidden, targets=batch.labels[mask], head=head, token_inputs=given)
        if self.reference is not None:
            inputs.teacher = self.reference.at_loss_positions(batch.model_inputs, mask, hidden, head)
        out = self.loss_fn(inputs)
        return out.loss_sum, out.token_metrics

    def _optimizer_step(self, batches: list[MicroBatch], old: list[Tensor] | None,
                        log_now: bool = True) -> tuple[dict[str, float], list[tuple[Tensor, Tensor]]]:
        """One optimizer step over ``batches``, with each one's old log-probabilities (None: the
        policy is the sampler's). Its metrics, logged at its (0-indexed) step unless ``log_now`` is
        false, and each micro-batch's per-token log-probability and entropy before the step."""
        optimizer = self.optimizers()
        lengths = [n for mb in batches for n in mb.lengths]
        totals = self._reduce_sum(torch.tensor([float(sum(lengths)), float(len(lengths))], device=self.device))
        weights = sequence_weights(lengths, self.aggregation, self.sampling.max_new_tokens,
                                   total_tokens=int(totals[0]), total_sequences=int(totals[1]))
        optimizer.zero_grad()
        sums: dict[str, Tensor] = {}
        loss_total = torch.zeros((), device=self.device, dtype=torch.float64)
        taken = 0
        scored = []
        for j, mb in enumerate(batches):
            mb_old = None if old is None else old[j]
            loss_sum, token_metrics = self._gathered(self._loss, mb, mb_old, weights[taken : taken + len(mb.lengths)])
            scored.append((token_metrics["logprob"].detach(), token_metrics["entropy"].detach()))
            taken += len(mb.lengths)
            # DDP and FSDP average gradients over ranks: the weights already divide by the step's
            # totals over every rank, so undo the average.
            self.manual_backward(loss_sum * self.trainer.world_size)
            loss_total += loss_sum.detach().double()
            for name, values in token_metrics.items():
                sums[name] = sums.get(name, 0.0) + values.detach().double().sum()
        grad_norm = self.gradient_guard.grad_norm(self.model, self.global_step + 1)
        if torch.isfinite(grad_norm) and self.max_grad_norm:
            self.clip_gradients(optimizer, gradient_clip_val=self.max_grad_norm, gradient_clip_algorithm="norm")
        names = sorted(sums)
        packed = self._reduce_sum(torch.stack([loss_total] + [sums[n] for n in names]
                                              + [torch.tensor(float(sum(lengths)), dtype=torch.float64,
                                                              device=self.device)]))
        tokens = max(float(packed[-1]), 1.0)
        metrics = {f"train/{name}": float(packed[1 + i]) / tokens for i, name in enumerate(names)}
        metrics.update({"train/loss": float(packed[0]), "train/grad_norm": float(grad_norm),
                        "train/lr": optimizer.param_groups[0]["lr"],
                        "train/skipped_steps": float(self.gradient_guard.skipped)})
        if log_now:
            self._log_metrics(metrics, step=self.global_step)
        optimizer.step()
        scheduler = self.lr_schedulers()
        if scheduler is not None:
            scheduler.step()
        self.gradient_guard.stop_if_diverged(self.trainer, self.model)
        return metrics, scored

    def _rollout_metrics(self, rollout: Rollout, batches: list[MicroBatch], old: list[tuple[Tensor, Tensor]],
                         rollout_s: float, update_s: float) -> dict[str, float]:
        """Rewards, groups, lengths, entropies and times of a rollout step, over every rank."""
        samples = [s for per_prompt in rollout.samples for s in per_prompt]
        lengths = torch.tensor([float(s.num_tokens) for s in samples], dtype=torch.float64)
        entropies = torch.cat([o[1] for o in old]).double()
        trainer_logp = torch.cat([o[0] for o in old]).double().cpu()
        sampler_logp = torch.tensor([lp for mb in batches for p, k in mb.sequences
                                     for lp in rollout.samples[p][k].logprobs], dtype=torch.float64)
        top = entropies.topk(max(1, math.ceil(0.2 * entropies.numel()))).values if entropies.numel() else entropies
        rewards = rollout.rewards.double()
        sums = torch.stack([
            rewards.sum(), rewards.square().sum(), torch.tensor(float(rewards.numel())),
            (rewards.std(dim=1) == 0).double().sum() if rollout.group_size > 1 else torch.tensor(0.0),
            (rewards.max(dim=1).values > 0).double().sum(), torch.tensor(float(rewards.shape[0])),
            lengths.sum(), torch.tensor([float(s.truncated) for s in samples]).double().sum(),
            entropies.sum().cpu(), top.sum().cpu(), torch.tensor(float(top.numel())), torch.tensor(float(entropies.numel())),
            (sampler_logp - trainer_logp).abs().sum(), torch.tensor(float(rollout.failed_rewards)),
        ]).to(self.device)
        s = self._reduce_sum(sums).tolist()
        count = max(s[2], 1.0)
        mean = s[0] / count
        metrics = {
            "train/reward_mean": mean,
            "train/reward_std": math.sqrt(max(s[1] / count - mean * mean, 0.0)),
            "train/zero_variance_groups": s[3] / max(s[5], 1.0),
            f"train/pass@{rollout.group_size}": s[4] / max(s[5], 1.0),
            "train/response_length_mean": s[6] / count,
            "train/response_length_max": float(self._reduce_max(lengths.max())),
            "train/truncated_share": s[7] / count,
            "train/rollout_entropy": s[8] / max(s[11], 1.0),
            "train/rollout_entropy_top20": s[9] / max(s[10], 1.0),
            "train/sampler_logprob_gap": s[12] / max(s[11], 1.0),
            "train/reward_failures": s[13],
            "train/rollout_s": rollout_s,
            "train/update_s": update_s,
            "train/tokens_per_s": s[6] / max(rollout_s + update_s, 1e-9),
        }
        return metrics

    def _log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Straight to the loggers, at optimizer step ``step`` (0-indexed, as SFT logs): a training
        step here holds several optimizer steps, and Lightning's ``self.log`` keeps one value per
        key and training step."""
        if self.trainer.is_global_zero:
            for logger in self.trainer.loggers:
                logger.log_metrics(metrics, step=step)
                logger.save()  # as Lightning does after logging: a killed run keeps what it logged

    def _reduce_sum(self, tensor: Tensor) -> Tensor:
        return self.trainer.strategy.reduce(tensor, reduce_op="sum") if self.trainer.world_size > 1 else tensor

    def _reduce_max(self, tensor: Tensor) -> Tensor:
        return self.all_gather(tensor.to(self.device)).max() if self.trainer.world_size > 1 else tensor
