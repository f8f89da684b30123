"""The preallocated KV cache against ``transformers``' concatenating one: the same keys and values
through updates and row drops, and the decoding loop's samples bit for bit."""

from __future__ import annotations

import pytest
import torch
from transformers.cache_utils import DynamicLayer

from bench.sampler import ConcatenatingCache  # the loop on transformers' cache, grown by torch.cat
from curio.evaluation.generation import HFGenerator
from curio.evaluation.kv_cache import PreallocatedLayer, drops_rows, preallocated_cache
from curio.evaluation.sampled import render_prompt
from curio.evaluation.sampling import SamplingParams


def test_updates_and_row_drops_hold_what_concatenation_holds():
    torch.manual_seed(0)
    mine, theirs = PreallocatedLayer(capacity=10), DynamicLayer()
    rows = 5
    for new, keep in ((4, None), (1, [0, 2, 3, 4]), (1, [2, 0, 1, 3]), (1, [3, 1]), (1, None), (2, [1])):
        if keep is not None:  # rows move forward and in a cycle, each over a row still to be read
            mine.batch_select_indices(torch.tensor(keep))
            theirs.batch_select_indices(torch.tensor(keep))
            rows = len(keep)
        keys, values = torch.randn(rows, 2, new, 3), torch.randn(rows, 2, new, 3)
        got, expected = mine.update(keys, values), theirs.update(keys, values)
        for a, b in zip(got, expected):
            assert torch.equal(a, b)
        assert mine.get_seq_length() == theirs.get_seq_length()
    with pytest.raises(RuntimeError, match="do not fit its capacity of 10"):
        mine.update(torch.randn(1, 2, 1, 3), torch.randn(1, 2, 1, 3))


def test_stopped_rows_are_filled_from_the_end_and_the_others_stay():
    generator = torch.Generator().manual_seed(0)
    for rows in (1, 2, 7, 256):
        for _ in range(20):
            going = torch.rand(rows, generator=generator) < torch.rand(1, generator=generator)
            order = HFGenerator._rows_kept(going)
            kept = int(going.sum())
            assert sorted(order.tolist()) == going.nonzero().squeeze(-1).tolist()  # every running row, once
            stay = going[:kept].nonzero().squeeze(-1)
            assert torch.equal(order[stay], stay)  # rows that go on before the cut keep their place
            assert (order != torch.arange(kept)).sum() == (~going[:kept]).sum()  # the fewest moves


@pytest.mark.parametrize("params", [
    SamplingParams(n=4, temperature=1.0, top_k=40, max_new_tokens=12, seed=3),
    SamplingParams(n=2, temperature=0.6, top_p=0.9, max_new_tokens=12, seed=4),
    SamplingParams(n=1, temperature=0, max_new_tokens=12),
], ids=["T=1, top-k", "T=0.6, top-p", "greedy"])
def test_the_loop_samples_what_it_samples_on_a_concatenating_cache(tiny_model, params):
    """Prompts of three lengths in one padded batch, rows stopping at different steps (a stop token
    the model samples often): every sample, with its log-probabilities and entropies, is the same."""
    model, tokenizer = tiny_model()
    prompts = [render_prompt(tokenizer, [{"role": "user", "content": q}])
               for q in ("Compute 1+2.", "What is (7+5)*3-4*2? Think it through.", "Hi")]
    free = [s.token_ids for per_prompt in ConcatenatingCache(model, tokenizer, progress=False).generate(
        prompts, params) for s in per_prompt]
    drawn = [t for ids in free for t in ids]
    # The most frequent token that rows first draw at different steps (or never).
    stop = next(t for t in sorted(set(drawn), key=drawn.count, reverse=True)
                if len({ids.index(t) if t in ids else None for ids in free}) > 1)
    params = SamplingParams(**{**params.__dict__, "stop_token_ids": (stop,)})
    expected = ConcatenatingCache(model, tokenizer, progress=False).generate(prompts, params)
    assert len({s.num_tokens for p in expected for s in p}) > 1  # rows were dropped at different steps
    assert HFGenerator(model, tokenizer, progress=False).generate(prompts, params) == expected


def test_other_kinds_of_layer_keep_their_own_cache():
    from transformers import Qwen2Config

    config = Qwen2Config(num_hidden_layers=2, hidden_size=16, intermediate_size=32, num_attention_heads=2,
                         num_key_value_heads=2, vocab_size=32, use_sliding_window=True, sliding_window=4,
                         max_window_layers=1, layer_types=["full_attention", "sliding_attention"])
    layers = preallocated_cache(config, 10).layers
    assert type(layers[0]) is PreallocatedLayer and type(layers[1]) is not PreallocatedLayer


def test_a_cache_with_linear_attention_samples_with_generate(tiny_model, monkeypatch):
    """A linear-attention layer's convolution and recurrent states do not follow a row drop: such a
    model samples with model.generate, never with the loop that drops rows."""
    from transformers import Qwen2Config
    from transformers.cache_utils import DynamicCache, LinearAttentionLayer

    sliding = Qwen2Config(num_hidden_layers=2, hidden_size=16, intermediate_size=32, num_attention_heads=2,
                          num_key_value_heads=2, vocab_size=32, use_sliding_window=True, sliding_window=4,
                          max_window_layers=1, layer_types=["full_attention", "sliding_attention"])
    assert drops_rows(preallocated_cache(sliding, 10)) and drops_rows(DynamicCache(config=sliding))
    model, tokenizer = tiny_model()
    hybrid = preallocated_cache(model.config, 10)
    hybrid.layers[-1] = LinearAttentionLayer()
    assert not drops_rows(hybrid)

    def refuse(*args):
        raise AssertionError("the row-dropping loop ran on a cache that cannot drop rows")

    monkeypatch.setattr(HFGenerator, "_decode_loop", refuse)
    monkeypatch.setattr(HFGenerator, "_new_cache", lambda self, positions: hybrid)
    prompt = render_prompt(tokenizer, [{"role": "user", "content": "Compute 1+2."}])
    params = SamplingParams(n=2, temperature=1.0, max_new_tokens=6, seed=0)
    samples = HFGenerator(model, tokenizer, progress=False).generate([prompt], params)
    assert len(samples[0]) == 2 and all(0 < s.num_tokens <= 6 for s in samples[0])
