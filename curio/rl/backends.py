"""Rollout backends: what samples the policy during RL, chosen by config (``conf/rollout/``).

- :class:`HFRollout` (``rollout=hf``): ``transformers``' ``generate`` on the policy itself, so the
  sampler always has the trainer's weights (CPU, tests, small models).
- :class:`VLLMRollout` (``rollout=vllm``): a vLLM engine in the training process (colocated, one per
  rank), its weights replaced with the trainer's before every rollout step, tensor by tensor
  (each FSDP2 shard gathered in turn). ``train/sampler_logprob_gap`` shows a stale engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from torch import Tensor, nn

from curio.evaluation.generation import Generator, HFGenerator
from curio.lora import has_lora, merged_tensors


class HFRollout:
    """Args:
    batch_size: sequences sampled together (a prompt's G samples count G).
    """

    def __init__(self, batch_size: int = 64):
        if batch_size < 1:
            raise ValueError(f"rollout.batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size

    def generator(self, model: nn.Module, tokenizer: Any, autocast: Any = None) -> Generator:
        """A generator sampling ``model`` as it is now."""
        return HFGenerator(model, tokenizer, batch_size=self.batch_size, progress=False, autocast=autocast)

    def close(self) -> None:
        """Nothing to release."""


class VLLMRollout:
    """Args:
    model: the policy's HF folder or hub id (the engine starts from it; later weights are synced).
    dtype: the engine's weight dtype (``auto``: the checkpoint's).
    **engine: further ``vllm.LLM`` arguments (``gpu_memory_utilization``, ``max_model_len``,
        ``enforce_eager``, ...).
    """

    def __init__(self, model: str, dtype: str = "auto", **engine: Any):
        self.model, self.dtype, self.engine = model, dtype, engine
        self._generator: Any = None

    def generator(self, model: nn.Module, tokenizer: Any, autocast: Any = None) -> Generator:
        """The engine, with ``model``'s current weights (started on the first call)."""
        if self._generator is None:
            from curio.evaluation.vllm_generation import VLLMGenerator

            self._generator = VLLMGenerator(self.model, dtype=self.dtype, progress=False, colocated=True,
                                            **self.engine)
        self._generator.load_weights(full_tensors(model))
        return self._generator

    def close(self) -> None:
        self._generator = None


def full_tensors(model: nn.Module) -> Iterator[tuple[str, Tensor]]:
    """``model``'s state dict one whole tensor at a time: an FSDP2 shard is gathered when its turn
    comes (a collective, so every rank iterates alike) and dropped after it is consumed. A LoRA
    policy (``model.lora.rank > 0``) gives its merged weights under the plain model's names, what
    the engine (started from the plain checkpoint) holds."""
    state = model.state_dict()
    if has_lora(model):
        yield from merged_tensors(model, state, _whole)
        return
    for name, tensor in state.items():
        yield name, _whole(tensor)


def _whole(tensor: Tensor) -> Tensor:
    return tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor
