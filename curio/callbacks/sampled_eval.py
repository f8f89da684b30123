"""Sampled validation during training: generate, grade and log accuracy, pass@k and entropies."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from curio.evaluation.benchmark import Benchmark
from curio.evaluation.generation import HFGenerator
from curio.evaluation.grading import Grader
from curio.evaluation.sampled import run_benchmark
from curio.evaluation.sampling import SamplingParams
from curio.export import is_sharded

log = logging.getLogger(__name__)


class SampledEval(Callback):
    """Every ``every_n_steps`` optimizer steps, on rank 0, samples and grades a few benchmark
    problems with the model being trained and logs ``val/<benchmark>/<metric>``.

    It runs the code of ``eval.py`` (:func:`~curio.evaluation.sampled.run_benchmark`): the metrics
    are ``accuracy``, ``pass@k``, ``maj@n``, ``mean_length``, ``truncated_share``, distinct-n and
    ``token_entropy`` / ``token_entropy_sampling``. Generation uses the KV cache, runs in eval mode
    under the trainer's precision (autocast) and restores train mode; it is seeded inside a forked
    RNG, so the training run's random state, and hence an exact resume, is untouched.

    Metrics go straight to the trainer's loggers at the step of that optimizer step's training
    metrics (whatever ``log_every_n_steps`` is), and to ``trainer.callback_metrics``.

    The other ranks of a multi-GPU run go on and wait for rank 0 at the next gradient sync, so keep
    the subset small. A model sharded with FSDP cannot generate on one rank: the callback then
    does nothing (with a warning).

    Args:
        benchmarks: the benchmarks (loaded, e.g. by Hydra from ``conf/benchmark/`` with a
            ``limit``), as a mapping (its values are used) or a sequence.
        every_n_steps: evaluate each time the count of optimizer steps reaches (or, in RL, where a
            training step takes several, passes) a multiple of ``every_n_steps``.
        sampling: :class:`~curio.evaluation.sampling.SamplingParams` fields (``n``,
            ``temperature``, ``max_new_tokens``, ...).
        batch_size: sequences per ``generate`` call.
        require_think_close: grade only text after the last ``</think>``.
        grading_timeout_s: per-sample math-verify limit.
        grading_workers: grading processes, started on first need and kept for the whole run.
    """

    def __init__(
        self,
        benchmarks: Mapping[str, Benchmark] | Sequence[Benchmark],
        every_n_steps: int = 50,
        sampling: Mapping[str, Any] | None = None,
        batch_size: int = 64,
        require_think_close: bool = False,
        grading_timeout_s: float = 10.0,
        grading_workers: int = 1,
    ):
        if every_n_steps < 1:
            raise ValueError(f"callbacks.sampled_eval.every_n_steps must be >= 1, got {every_n_steps}")
        self.benchmarks = list(benchmarks.values()) if isinstance(benchmarks, Mapping) else list(benchmarks)
        if not self.benchmarks:
            raise ValueError("callbacks.sampled_eval.benchmarks is empty")
        self.every_n_steps = every_n_steps
        self.params = SamplingParams(**dict(sampling or {}))
        self.batch_size = batch_size
        self.require_think_close = require_think_close
        self.grading_timeout_s = grading_timeout_s
        self.grading_workers = grading_workers
        self._grader: Grader | None = None
        self._last_step = 0
        self._warned_sharded = False
        #: ``(step, metrics)`` of every evaluation so far (for tests and notebooks).
        self.history: list[tuple[int, dict[str, float]]] = []

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # A resumed run has already evaluated at its current step.
        self._last_step = trainer.global_step

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step  # optimizer steps taken, this batch's included
        # With gradient accumulation the hook runs once per micro-batch, and an RL training step
        # takes several optimizer steps: act once each time the step count passes a multiple.
        if step // self.every_n_steps == self._last_step // self.every_n_steps:
            return
        self._last_step = step
        if not trainer.is_global_zero:
            return
        model = pl_module.model
        if is_sharded(model):
            if not self._warned_sharded:
                log.warning("SampledEval: the model is sharded (FSDP); sampled validation is skipped")
                self._warned_sharded = True
            return
        metrics = self.evaluate(model, trainer.datamodule.tokenizer, trainer.precision_plugin.forward_context)
        self.history.append((step, metrics))
        # At the step index Lightning gives this optimizer step's training metrics.
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step - 1)
        pl_module.log_dict(metrics, on_step=True, on_epoch=False, logger=False, rank_zero_only=True)

    def evaluate(self, model, tokenizer, autocast=None) -> dict[str, float]:
        """Sample, grade and score every benchmark; ``{"val/<benchmark>/<metric>": value}``."""
        if self._grader is None:
            self._grader = Grader(timeout_s=self.grading_timeout_s, num_workers=self.grading_workers)
        generator = HFGenerator(model, tokenizer, batch_size=self.batch_size, progress=False,
                                autocast=autocast)
        metrics: dict[str, float] = {}
        start = time.perf_counter()
        for benchmark in self.benchmarks:
            run = run_benchmark(benchmark, tokenizer, generator, self._grader, self.params,
                                require_think_close=self.require_think_close)
            metrics.update({f"val/{benchmark.name}/{key}": float(v) for key, v in run.metrics.items()})
        accuracies = ", ".join(f"{b.name} {metrics[f'val/{b.name}/accuracy']:.3f}" for b in self.benchmarks)
        log.info("sampled validation accuracy: %s (%.1f s)", accuracies, time.perf_counter() - start)
        return metrics

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._grader is not None:
            self._grader.close()
            self._grader = None
