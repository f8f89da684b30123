"""A KV cache allocated once for a whole generation, for :class:`~curio.evaluation.generation.HFGenerator`'s
decoding loop.

``transformers``' ``DynamicLayer`` grows by ``torch.cat`` at every step, which copies the layer's
whole cache each time: a fifth of a decoding step's time for the small models of this project's
worlds (``docs/benchmarks.md``). :class:`PreallocatedLayer` writes each step's keys and values into
a buffer sized for the prompt plus every new token, and hands attention a view of the part filled
so far: the same values in the same shape, so attention computes what it computed on the
concatenated cache.
"""

from __future__ import annotations

import torch
from transformers import PretrainedConfig
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer, DynamicSlidingWindowLayer


class PreallocatedLayer(DynamicLayer):
    """One attention layer's keys and values (``[rows, heads, positions, head_dim]``) in buffers of
    ``capacity`` positions, allocated at the first update.

    Args:
        capacity: the most positions the layer will hold (prompt width plus new tokens).
    """

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = capacity
        self.length = 0
        self.key_buffer: torch.Tensor | None = None
        self.value_buffer: torch.Tensor | None = None

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.dtype, self.device = key_states.dtype, key_states.device
        rows, heads, _, dim = key_states.shape
        self.key_buffer = key_states.new_empty(rows, heads, self.capacity, dim)
        self.value_buffer = value_states.new_empty(rows, value_states.shape[1], self.capacity, value_states.shape[-1])
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
        """Append ``[rows, heads, new, head_dim]`` states; returns every position's keys and values."""
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        if end > self.capacity:
            raise RuntimeError(f"PreallocatedLayer: {end} positions do not fit its capacity of {self.capacity}")
        self.key_buffer[:, :, self.length : end] = key_states
        self.value_buffer[:, :, self.length : end] = value_states
        self.length = end
        self._expose()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep the rows ``indices``: row ``i`` becomes row ``indices[i]``. Only the rows that
        change are copied, and only their filled positions; the rows after the kept ones are no
        longer used."""
        if not self.is_initialized:
            return
        kept = indices.numel()
        moved = (indices != torch.arange(kept, device=indices.device)).nonzero().squeeze(-1)
        if moved.numel():
            sources = indices[moved]
            # Indexing with a tensor copies first, so a moved row never overwrites a row still to be read.
            self.key_buffer[moved, :, : self.length] = self.key_buffer[sources, :, : self.length]
            self.value_buffer[moved, :, : self.length] = self.value_buffer[sources, :, : self.length]
        self.key_buffer, self.value_buffer = self.key_buffer[:kept], self.value_buffer[:kept]
        self._expose()

    def _expose(self) -> None:
        self.keys = self.key_buffer[:, :, : self.length]
        self.values = self.value_buffer[:, :, : self.length]

    def reset(self) -> None:
        self.key_buffer = self.value_buffer = None
        self.length = 0
        super().reset()

    def crop(self, tokens_to_remove: int) -> None:
        raise NotImplementedError("PreallocatedLayer is made for one decoding loop, which never crops")

    def batch_repeat_interleave(self, repeats: int) -> None:
        raise NotImplementedError("PreallocatedLayer is made for one decoding loop, which never repeats rows")


def preallocated_cache(config: PretrainedConfig, capacity: int) -> DynamicCache:
    """The cache ``transformers`` builds for ``config``, with each full-attention layer preallocated
    for ``capacity`` positions; other kinds of layer (sliding windows, linear attention) stay theirs."""
    cache = DynamicCache(config=config)
    cache.layers = [PreallocatedLayer(capacity) if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache


def drops_rows(cache: Cache) -> bool:
    """Whether every layer of ``cache`` keeps a row's whole state when the decoding loop drops or
    moves rows (``batch_select_indices``): keys and values, full or in a sliding window. Linear
    attention and hybrid layers also hold convolution and recurrent states that their row selection
    leaves behind or does not have, and other kinds are not checked: with those, the caller samples
    with ``model.generate``, which never drops rows."""
    return all(type(layer) in (PreallocatedLayer, DynamicLayer, DynamicSlidingWindowLayer) for layer in cache.layers)
