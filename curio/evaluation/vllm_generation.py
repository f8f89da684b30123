"""The vLLM backend (``generation.backend=vllm``): :class:`HFGenerator`'s interface on vLLM.

vLLM is imported only when this backend is built, and is never a dependency of the project (it
needs Linux and a CUDA GPU). Prompts arrive as token ids rendered by the same tokenizer and chat
template as with ``transformers``, so both backends see identical inputs. vLLM does not expose
full next-token distributions, so samples carry no entropies (``entropy`` is None) and the
``token_entropy`` metrics are left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from curio.errors import ConfigError
from curio.evaluation.sampling import Sample, SamplingParams


class VLLMGenerator:
    """Sampling with ``vllm.LLM``.

    Args:
        model: HF folder or hub id.
        dtype: weight dtype (``bfloat16``, ``float16``, ``float32``, or ``auto``).
        revision, trust_remote_code: as for ``from_pretrained``.
        progress: show vLLM's progress bar.
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
        **engine: Any,
    ):
        try:
            import vllm
        except ImportError as err:
            raise ConfigError(
                "generation.backend=vllm needs the vllm package, which is not installed "
                f"({err}); install it on a Linux machine with a CUDA GPU (pip install vllm), "
                "or use generation.backend=hf"
            ) from err
        self._vllm = vllm
        self.progress = progress
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

    def generate(
        self, prompts: Sequence[Sequence[int]], params: SamplingParams, desc: str = "generate"
    ) -> list[list[Sample]]:
        """``params.n`` samples per tokenized prompt; vLLM schedules and batches them itself."""
        sampling = self._vllm.SamplingParams(
            n=params.n,
            temperature=params.temperature,
            top_p=params.top_p,
            top_k=params.top_k if params.top_k > 0 else -1,
            max_tokens=params.max_new_tokens,
            stop=list(params.stop) or None,
            stop_token_ids=list(params.stop_token_ids) or None,
            # Per request: a prompt's samples depend on the seed and the prompt only.
            seed=params.seed,
            skip_special_tokens=False,  # as with HF: "<think>"-style markers may be special
        )
        requests = [{"prompt_token_ids": list(p)} for p in prompts]
        outputs = self.llm.generate(requests, sampling, use_tqdm=self.progress)
        return [
            [
                Sample(
                    text=choice.text,
                    num_tokens=len(choice.token_ids),
                    truncated=choice.finish_reason == "length",
                )
                for choice in output.outputs
            ]
            for output in outputs
        ]
