"""One benchmark, sampled and scored: chat prompts -> n samples each -> grades -> metrics.

Shared by ``eval.py`` (:mod:`curio.evaluation.run`) and the training-time
:class:`~curio.callbacks.sampled_eval.SampledEval` callback, so both score alike.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from curio.errors import ConfigError
from curio.evaluation.benchmark import Benchmark
from curio.evaluation.generation import Generator
from curio.evaluation.grading import Grade, Grader
from curio.evaluation.metrics import benchmark_metrics
from curio.evaluation.partial import PartialSamples
from curio.evaluation.sampling import Sample, SamplingParams

log = logging.getLogger(__name__)


@dataclass
class BenchmarkRun:
    """A benchmark's samples, grades and metrics (``samples[problem][sample]``, same for grades).

    Attributes:
        prompt_texts: each problem's prompt as the model saw it (chat template applied).
        prompt_tokens: each problem's prompt length in tokens.
        generation_s, grading_s: wall-clock seconds spent generating and grading.
    """

    benchmark: Benchmark
    params: SamplingParams
    prompt_texts: list[str]
    prompt_tokens: list[int]
    samples: list[list[Sample]]
    grades: list[list[Grade]]
    metrics: dict[str, float]
    generation_s: float
    grading_s: float

    def records(self) -> Iterator[dict[str, Any]]:
        """One JSON-ready row per sample (for ``samples.jsonl``)."""
        for problem, prompt_tokens, samples, grades in zip(
            self.benchmark.problems, self.prompt_tokens, self.samples, self.grades
        ):
            for k, (sample, grade) in enumerate(zip(samples, grades)):
                yield {
                    "benchmark": self.benchmark.name,
                    "problem": problem.index,
                    "sample": k,
                    "ground_truth": problem.ground_truth,
                    "response": sample.text,
                    "extracted": grade.extracted,
                    "correct": grade.correct,
                    "grading_error": grade.error,
                    "grading_timed_out": grade.timed_out,
                    "prompt_tokens": prompt_tokens,
                    "num_tokens": sample.num_tokens,
                    "num_chars": len(sample.text),
                    "truncated": sample.truncated,
                    "entropy": sample.entropy,
                    "entropy_sampling": sample.entropy_sampling,
                }

    def prompt_records(self) -> Iterator[dict[str, Any]]:
        """One JSON-ready row per problem (for ``prompts.jsonl``): the prompt each sample answered."""
        for problem, text, tokens in zip(self.benchmark.problems, self.prompt_texts, self.prompt_tokens):
            yield {"benchmark": self.benchmark.name, "problem": problem.index, "prompt": text,
                   "prompt_tokens": tokens, "ground_truth": problem.ground_truth}

    def grading_errors(self) -> list[dict[str, Any]]:
        """Every sample whose grading failed or timed out: where, and why."""
        return [
            {"problem": problem.index, "sample": k, "error": grade.error, "timed_out": grade.timed_out}
            for problem, grades in zip(self.benchmark.problems, self.grades)
            for k, grade in enumerate(grades)
            if grade.error is not None or grade.timed_out
        ]


def render_prompt_text(tokenizer, messages: Sequence[dict[str, str]]) -> str:
    """``messages`` in the tokenizer's chat template, ending in the generation prompt."""
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError(
            "the tokenizer has no chat template; set model.chat_template (a bundled name such as "
            "chatml or qwen_math_think, a .jinja file, or the template text)"
        )
    return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)


def render_prompt(tokenizer, messages: Sequence[dict[str, str]]) -> list[int]:
    """Token ids of :func:`render_prompt_text`, tokenized without added special tokens, as the
    training data is (:mod:`curio.data.encoding`): the template already writes whatever BOS it wants.
    """
    return tokenizer(render_prompt_text(tokenizer, messages), add_special_tokens=False)["input_ids"]


def check_context(benchmark: Benchmark, prompt_tokens: Sequence[int], max_new_tokens: int,
                  context_length: int | None, overflow: str = "warn") -> None:
    """Prompts plus ``max_new_tokens`` must fit the model's context: beyond it, a model's samples
    are cut short or run on positions it never learnt. ``overflow`` (``generation.context_overflow``,
    checked by :func:`~curio.evaluation.eval_config.check_eval_config`): ``warn`` (log how many do
    not fit) or ``error`` (stop before sampling)."""
    if context_length is None:
        return
    over = [n for n in prompt_tokens if n + max_new_tokens > context_length]
    if not over:
        return
    message = (f"{benchmark.name}: {len(over)} of {len(prompt_tokens)} prompts plus max_new_tokens="
               f"{max_new_tokens} exceed the model's context of {context_length} tokens (longest prompt "
               f"{max(over)} tokens); lower sampling.max_new_tokens, or use a model with a longer context")
    if overflow == "error":
        raise ConfigError(message + " (generation.context_overflow=warn samples them anyway)")
    log.warning(message)



def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def run_benchmark(
    benchmark: Benchmark,
    tokenizer,
    generator: Generator,
    grader: Grader,
    params: SamplingParams,
    require_think_close: bool = False,
    context_overflow: str = "warn",
    partial: PartialSamples | None = None,
) -> BenchmarkRun:
    """Sample ``params.n`` responses per problem, grade them and compute the metrics.

    With ``partial``, sampling keeps its finished batches there and resumes from those it holds
    (``generation_s`` then counts the earlier runs' sampling too).

    The metrics are :func:`~curio.evaluation.metrics.benchmark_metrics` (with lengths in tokens,
    truncation and distinct-n) plus, when the backend provides them, ``token_entropy`` and
    ``token_entropy_sampling``: the mean over samples of each sample's mean next-token entropy
    (nats) at T = 1 and at the sampling temperature.
    """
    texts = [render_prompt_text(tokenizer, problem.prompt) for problem in benchmark.problems]
    prompts = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]
    check_context(benchmark, [len(p) for p in prompts], params.max_new_tokens, generator.context_length,
                  context_overflow)
    start = time.perf_counter()
    samples = generator.generate(prompts, params, desc=benchmark.name, partial=partial)
    generation_s = time.perf_counter() - start + (partial.earlier_s if partial else 0.0)

    start = time.perf_counter()
    flat = grader.grade(
        [s.text for per_problem in samples for s in per_problem],
        [p.ground_truth for p in benchmark.problems for _ in range(params.n)],
        benchmark.grader,
        require_think_close=require_think_close,
    )
    grades = [flat[i * params.n : (i + 1) * params.n] for i in range(len(benchmark.problems))]
    grading_s = time.perf_counter() - start

    metrics = benchmark_metrics(
        grades,
        response_lengths=[[s.num_tokens for s in per_problem] for per_problem in samples],
        truncated=[[s.truncated for s in per_problem] for per_problem in samples],
        texts=[[s.text for s in per_problem] for per_problem in samples],
    )
    every = [s for per_problem in samples for s in per_problem]
    if all(s.entropy is not None for s in every):
        metrics["token_entropy"] = _mean([s.entropy for s in every])  # type: ignore[misc]
    if all(s.entropy_sampling is not None for s in every):
        metrics["token_entropy_sampling"] = _mean([s.entropy_sampling for s in every])  # type: ignore[misc]
    return BenchmarkRun(
        benchmark=benchmark,
        params=params,
        prompt_texts=texts,
        prompt_tokens=[len(p) for p in prompts],
        samples=samples,
        grades=grades,
        metrics=metrics,
        generation_s=generation_s,
        grading_s=grading_s,
    )
