"""HFGenerator: left padding, per-sample entropies against float64, stops and truncation, seeding,
and its decoding loop against ``model.generate``.

The model is ``model=tiny`` (random weights, byte-level tokenizer); references are computed with a
float64 copy of it, one unpadded prompt at a time, with a plain greedy loop.
"""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest
import torch
from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from curio.errors import ConfigError
from curio.evaluation.generation import EntropyRecorder, HFGenerator
from curio.evaluation.partial import PartialSamples, batch_key
from curio.evaluation.sampled import render_prompt
from curio.evaluation.sampling import Sample, SamplingParams
from curio.ops import entropy
from curio.rng import torch_rng_json

QUESTIONS = ["Compute 1+2.", "What is (7+5)*3-4*2? Think it through.", "Hi"]


@pytest.fixture(scope="module")
def model_and_tokenizer(tiny_model):
    return tiny_model()


@pytest.fixture(scope="module")
def prompts(model_and_tokenizer):
    _, tokenizer = model_and_tokenizer
    ids = [render_prompt(tokenizer, [{"role": "user", "content": q}]) for q in QUESTIONS]
    assert len({len(p) for p in ids}) == len(ids)  # different lengths: the batch needs padding
    return ids


def reference(model, prompt: list[int], steps: int, stop: set[int] = frozenset(), temperature: float = 1.0):
    """Greedy tokens and float64 entropies (T = 1 and T = ``temperature``), one unpadded prompt."""
    model64 = copy.deepcopy(model).double().eval()
    ids, tokens, at_one, at_t = list(prompt), [], [], []
    with torch.no_grad():
        for _ in range(steps):
            logits = model64(torch.tensor([ids])).logits[0, -1]
            p = torch.softmax(logits, -1)
            at_one.append(float(-(p * torch.log(p)).sum()))
            q = torch.softmax(logits / temperature, -1)
            at_t.append(float(-(q * torch.log(q)).sum()))
            token = int(logits.argmax())
            tokens.append(token)
            ids.append(token)
            if token in stop:
                break
    return tokens, at_one, at_t


def test_left_padded_batch_gives_the_unbatched_greedy_outputs(model_and_tokenizer, prompts):
    model, tokenizer = model_and_tokenizer
    params = SamplingParams(n=2, temperature=0, max_new_tokens=12)
    batched = HFGenerator(model, tokenizer, batch_size=16, progress=False).generate(prompts, params)
    alone = HFGenerator(model, tokenizer, batch_size=1, progress=False)
    for prompt, samples in zip(prompts, batched):
        expected = alone.generate([prompt], params)[0][0]
        assert [s.text for s in samples] == [expected.text] * 2
        assert samples[0].num_tokens == expected.num_tokens
    # The outputs come back in prompt order (the batch ran longest first).
    tokens, _, _ = reference(model, prompts[2], 12)
    assert batched[2][0].text == tokenizer.decode(tokens, skip_special_tokens=False)


def test_entropies_match_a_float64_forward_pass_and_stop_at_eos(model_and_tokenizer, prompts):
    model, tokenizer = model_and_tokenizer
    short, long = prompts[0], prompts[1]
    steps, temperature = 8, 0.7
    tokens_short, _, _ = reference(model, short, steps)
    tokens_long, _, _ = reference(model, long, steps)
    # A stop token the short prompt produces at step >= 2 and the long one never does: the short row
    # ends early while the long one runs on, so its entropies must stop at its EOS.
    stop = next(t for t in tokens_short[2:] if t not in tokens_long)
    # top_k = 1 samples the argmax, so the sampling path runs (warpers after the recorder) on
    # predictable tokens.
    params = SamplingParams(n=1, temperature=temperature, top_k=1, max_new_tokens=steps,
                            stop_token_ids=(stop,))
    out = HFGenerator(model, tokenizer, batch_size=4, progress=False).generate([short, long], params)
    for prompt, (sample,) in zip([short, long], out):
        tokens, at_one, at_t = reference(model, prompt, steps, stop={stop}, temperature=temperature)
        assert sample.num_tokens == len(tokens)
        assert sample.entropy == pytest.approx(sum(at_one) / len(at_one), abs=1e-4)
        assert sample.entropy_sampling == pytest.approx(sum(at_t) / len(at_t), abs=1e-4)
        body = tokens[:-1] if tokens[-1] == stop else tokens
        assert sample.text == tokenizer.decode(body, skip_special_tokens=False)
    assert out[0][0].num_tokens < steps and not out[0][0].truncated  # ended by its stop token
    assert out[1][0].num_tokens == steps and out[1][0].truncated  # hit max_new_tokens


def test_stop_string_ends_the_text_before_it(model_and_tokenizer, prompts):
    model, tokenizer = model_and_tokenizer
    generator = HFGenerator(model, tokenizer, progress=False)
    full = generator.generate([prompts[1]], SamplingParams(temperature=0, max_new_tokens=16))[0][0]
    at = next(i for i, c in enumerate(full.text) if i >= 1 and c.isascii() and c.isprintable())
    stop = full.text[at]
    params = SamplingParams(temperature=0, max_new_tokens=16, stop=(stop,))
    cut = generator.generate([prompts[1]], params)[0][0]
    assert cut.text == full.text[: full.text.index(stop)]
    assert not cut.truncated and cut.num_tokens < 16


def test_seeded_sampling_is_reproducible_and_leaves_rng_and_train_mode(model_and_tokenizer, prompts):
    model, tokenizer = model_and_tokenizer
    generator = HFGenerator(model, tokenizer, progress=False)
    params = SamplingParams(n=3, temperature=1.0, max_new_tokens=10, seed=5)
    model.train()
    state = torch.get_rng_state()
    first = generator.generate(prompts, params)
    assert torch.equal(torch.get_rng_state(), state)  # a training run's random state is untouched
    assert model.training
    model.eval()
    texts = [[s.text for s in p] for p in first]
    assert [[s.text for s in p] for p in generator.generate(prompts, params)] == texts
    assert len({s.text for s in first[1]}) > 1  # n samples of a prompt differ
    other = generator.generate(prompts, SamplingParams(n=3, temperature=1.0, max_new_tokens=10, seed=6))
    assert [[s.text for s in p] for p in other] != texts


def test_checkpoint_generation_config_does_not_change_sampling(model_and_tokenizer, prompts):
    model, tokenizer = model_and_tokenizer
    saved = model.generation_config
    model.generation_config = copy.deepcopy(saved)
    model.generation_config.top_k = 1  # would make all samples identical if generate() used it
    try:
        samples = HFGenerator(model, tokenizer, progress=False).generate(
            [prompts[0]], SamplingParams(n=4, temperature=1.0, max_new_tokens=8))[0]
        assert len({s.text for s in samples}) > 1
        assert model.generation_config.top_k == 1  # restored after the call
    finally:
        model.generation_config = saved


def test_entropy_recorder_sees_raw_logits_and_leaves_them_unchanged():
    logits = torch.tensor([[0.0, 1.0, 2.0, float("-inf")], [5.0, 5.0, 5.0, 5.0]])
    recorder = EntropyRecorder(temperature=0.5)
    assert torch.equal(recorder(torch.zeros(2, 1, dtype=torch.long), logits), logits)
    at_one, at_half, chosen = recorder.result(torch.tensor([2, 0]))
    p = torch.softmax(logits[0, :3].double(), -1)
    p_half = torch.softmax(logits[0, :3].double() / 0.5, -1)  # the chosen token's, at the sampling temperature
    assert chosen[:, 0].tolist() == pytest.approx([float(p_half[2].log()), float(torch.log(torch.tensor(0.25)))],
                                                  abs=1e-6)
    assert float(at_one[0, 0]) == pytest.approx(float(-(p * p.log()).sum()), abs=1e-6)
    assert float(at_one[1, 0]) == pytest.approx(float(torch.log(torch.tensor(4.0))), abs=1e-6)
    assert float(at_half[0, 0]) < float(at_one[0, 0])  # cooler is sharper
    assert torch.isfinite(entropy(logits)).all()
    greedy = EntropyRecorder(temperature=0)
    greedy(torch.zeros(2, 1, dtype=torch.long), logits)
    assert torch.equal(greedy.result(torch.tensor([2, 0]))[1], torch.zeros(2, 1))


def test_samples_carry_their_tokens_and_the_samplers_log_probabilities(model_and_tokenizer, prompts):
    """The sampled tokens re-scored by a float64 forward pass over prompt + response give the
    sampler's log-probabilities at the sampling temperature: what the RL trainer recomputes."""
    model, tokenizer = model_and_tokenizer
    samples = HFGenerator(model, tokenizer, batch_size=4, progress=False).generate(
        prompts, SamplingParams(n=2, temperature=0.8, max_new_tokens=10, seed=3))
    model64 = copy.deepcopy(model).double().eval()
    for prompt, per_prompt in zip(prompts, samples):
        for sample in per_prompt:
            assert len(sample.token_ids) == sample.num_tokens == len(sample.logprobs)
            ids = torch.tensor([list(prompt) + list(sample.token_ids)])
            with torch.no_grad():
                logp = torch.log_softmax(model64(ids).logits[0, len(prompt) - 1 : -1] / 0.8, -1)
            expected = logp.gather(-1, torch.tensor(sample.token_ids)[:, None]).squeeze(-1)
            torch.testing.assert_close(torch.tensor(sample.logprobs, dtype=torch.float64), expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("n", 0, "sampling.n=0: must be >= 1"),
    ("temperature", -1.0, "sampling.temperature=-1.0"),
    ("top_p", 0.0, "sampling.top_p=0.0: must be in (0, 1]"),
    ("max_new_tokens", 0, "sampling.max_new_tokens=0"),
])
def test_sampling_params_name_the_bad_value(field, value, message):
    with pytest.raises(ValueError) as info:
        SamplingParams(**{field: value})
    assert message in str(info.value)


def test_vllm_backend_says_how_to_get_vllm():
    pytest.importorskip("curio.evaluation.vllm_generation")
    try:
        import vllm  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("vllm is installed")
    from curio.evaluation.vllm_generation import VLLMGenerator

    with pytest.raises(ConfigError, match="generation.backend=vllm needs the vllm package"):
        VLLMGenerator("some/model")


def _both_paths(model, tokenizer, prompts, params):
    """The decoding loop's and model.generate's (tokens, entropies T = 1, entropies T, log-probs),
    padded to the same width, each from the same seed."""
    generator = HFGenerator(model, tokenizer, progress=False)
    width = max(len(p) for p in prompts)
    input_ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(p)) + list(p) for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    eos = [tokenizer.eos_token_id, *params.stop_token_ids]
    warpers = LogitsProcessorList()
    if not params.greedy:
        warpers += [TemperatureLogitsWarper(params.temperature), TopKLogitsWarper(params.top_k),
                    TopPLogitsWarper(params.top_p)]
    out = []
    for run in (generator._decode_loop, generator._generate_call):
        torch.manual_seed(11)
        with torch.no_grad():
            result = run(input_ids, mask, params, eos, warpers)
        steps = result[0].shape[1]
        out.append([torch.nn.functional.pad(t, (0, params.max_new_tokens - steps),
                                            value=tokenizer.pad_token_id if i == 0 else 0.0)
                    for i, t in enumerate(result)])
    return out


def test_the_loop_draws_what_generate_draws_until_a_row_stops(model_and_tokenizer, prompts):
    """Same seed, same warpers, a padded batch: token for token generate()'s samples, and the same
    entropies and log-probabilities, up to the first step at which some row stops (after it, the
    loop samples fewer rows, so its random stream moves on differently)."""
    model, tokenizer = model_and_tokenizer
    params = SamplingParams(n=1, temperature=0.8, top_k=50, top_p=0.95, max_new_tokens=12)
    (tokens, *floats), (expected, *expected_floats) = _both_paths(model, tokenizer, prompts * 3, params)
    stopped = (expected == tokenizer.eos_token_id).any(dim=0).nonzero()
    upto = int(stopped[0]) + 1 if len(stopped) else params.max_new_tokens
    assert upto >= 3  # the comparison covers several steps
    assert torch.equal(tokens[:, :upto], expected[:, :upto])
    for mine, theirs in zip(floats, expected_floats):
        torch.testing.assert_close(mine[:, :upto], theirs[:, :upto], rtol=0, atol=1e-5)


def test_greedy_rows_that_stop_early_leave_the_others_as_generate_has_them(model_and_tokenizer, prompts):
    """Greedy, so the whole run is comparable: rows stop at different steps (stop tokens each row
    produces at its own step), are dropped from the loop's batch and its KV cache, and the rows
    still running continue exactly as in generate()."""
    model, tokenizer = model_and_tokenizer
    steps = 10
    greedy = SamplingParams(n=1, temperature=0, max_new_tokens=steps)
    (free, *_), _ = _both_paths(model, tokenizer, prompts, greedy)
    stops = []
    for row, step in ((0, 2), (1, 5)):  # row 0 stops at step 2, row 1 at 5, row 2 (if not hit) runs on
        token = int(free[row, step])
        if all(token not in free[other, :steps].tolist() for other in range(len(prompts)) if other != row):
            stops.append(token)
    assert stops, "the tiny model's greedy rows share every token: pick other steps"
    params = SamplingParams(n=1, temperature=0, max_new_tokens=steps, stop_token_ids=tuple(stops))
    (tokens, at_one, _, chosen), (expected, expected_at_one, _, expected_chosen) = _both_paths(
        model, tokenizer, prompts, params)
    assert torch.equal(tokens, expected)
    assert (tokens == tokenizer.pad_token_id).any()  # some row stopped early and was padded
    ran = expected != tokenizer.pad_token_id
    torch.testing.assert_close(at_one[ran], expected_at_one[ran], rtol=0, atol=1e-5)
    torch.testing.assert_close(chosen[ran], expected_chosen[ran], rtol=0, atol=1e-5)


class _Killed(Exception):
    """Stands for the kill (a session's end, a SIGKILL) that stops a run between two batches."""


def _dies_at_batch(monkeypatch, generator: HFGenerator, kill_at: int | None) -> list[int]:
    """Count ``generator``'s sampled batches (the returned list grows by one per batch); with
    ``kill_at``, that batch raises :class:`_Killed` instead of sampling."""
    real, calls = generator._generate_batch, []

    def counted(*args):
        calls.append(1)
        if len(calls) == kill_at:
            raise _Killed
        return real(*args)

    monkeypatch.setattr(generator, "_generate_batch", counted)
    return calls


def test_an_interrupted_generation_resumes_after_its_last_batch_with_the_same_samples(
        model_and_tokenizer, prompts, tmp_path, monkeypatch):
    """9 sequences in batches of 2: killed at the 4th batch, with a torn line after the 3rd; the
    resumed run samples the last 2 batches only and ends with the uninterrupted run's samples, token
    ids, log-probabilities and entropies, the caller's random state untouched."""
    model, tokenizer = model_and_tokenizer
    params = SamplingParams(n=3, temperature=1.0, top_k=40, max_new_tokens=10, seed=7)
    whole = HFGenerator(model, tokenizer, batch_size=2, progress=False).generate(prompts, params)

    path = tmp_path / "partial" / "bench.jsonl"
    first = HFGenerator(model, tokenizer, batch_size=2, progress=False)
    _dies_at_batch(monkeypatch, first, kill_at=4)
    with pytest.raises(_Killed):
        first.generate(prompts, params, partial=PartialSamples(path))
    assert len(path.read_text().splitlines()) == 1 + 3  # the key, then the 3 finished batches
    with path.open("a") as out:
        out.write('{"samples": [{"text": "cut sh')  # a kill in the middle of writing a 4th

    state = torch.get_rng_state()
    second = HFGenerator(model, tokenizer, batch_size=2, progress=False)
    calls = _dies_at_batch(monkeypatch, second, kill_at=None)
    partial = PartialSamples(path)
    resumed = second.generate(prompts, params, partial=partial)
    assert len(calls) == 2 and partial.earlier_s > 0
    assert resumed == whole
    assert torch.equal(torch.get_rng_state(), state)
    assert len(path.read_text().splitlines()) == 1 + 5  # the torn line went; batches 4 and 5 follow

    # Another batch size draws other batches: the file is set aside and sampling starts afresh.
    third = HFGenerator(model, tokenizer, batch_size=4, progress=False)
    calls = _dies_at_batch(monkeypatch, third, kill_at=None)
    assert third.generate(prompts, params, partial=PartialSamples(path)) == \
        HFGenerator(model, tokenizer, batch_size=4, progress=False).generate(prompts, params)
    assert len(calls) == 3
    assert len(path.with_name("bench.jsonl.stale").read_text().splitlines()) == 1 + 5  # kept, not deleted


def test_batches_of_other_sizes_than_their_key_makes_are_set_aside(tmp_path):
    """3 prompts x n=2 in batches of 4 are batches of 4 and 2: a third batch (a line written twice,
    say) or a batch of another size means the file is not one run's, and nothing of it is used."""
    key = batch_key([[1, 2], [3], [4]], SamplingParams(n=2, max_new_tokens=4), batch_size=4, device_type="cpu")
    rows = [dataclasses.asdict(Sample(text=f"s{i}", num_tokens=1, truncated=False)) for i in range(4)]
    rng = torch_rng_json([])
    fits = [{"samples": rows, "rng": rng, "elapsed_s": 1.0}, {"samples": rows[:2], "rng": rng, "elapsed_s": 2.0}]
    for batches, kept in ((fits[:1], 4), (fits, 6), (fits + fits[1:], 0), ([fits[1]], 0)):
        path = tmp_path / "bench.jsonl"
        path.write_text("".join(json.dumps(line) + "\n" for line in [{"key": key}, *batches]))
        samples, state = PartialSamples(path).resume(key)
        assert len(samples) == kept and (state is None) == (kept == 0)
        assert path.with_name("bench.jsonl.stale").is_file() == (kept == 0)
        path.with_name("bench.jsonl.stale").unlink(missing_ok=True)


def test_rows_filled_from_the_end_keep_their_own_samples(monkeypatch):
    """The fork world's base model (its greedy rows differ, unlike the tiny random model's), 12 test
    prompts of different lengths, greedy with a stop token that rows reach at different steps: the
    loop moves running rows from the end of the batch into stopped rows' places, and every row still
    gets generate()'s tokens, entropies and log-probabilities."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from curio.config import ROOT
    from curio.tinyworld.corpus import read_jsonl

    world = ROOT / "assets" / "fork_world"
    model = AutoModelForCausalLM.from_pretrained(world / "base", dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(world / "base")
    prompts = [render_prompt(tokenizer, [m for m in row["messages"] if m["role"] != "assistant"])
               for row in list(read_jsonl(world / "test_id.jsonl"))[:12]]
    assert len({len(p) for p in prompts}) > 1  # a padded batch
    steps = 24
    (free, *_), _ = _both_paths(model, tokenizer, prompts, SamplingParams(n=1, temperature=0, max_new_tokens=steps))
    orders = []
    rows_kept = HFGenerator._rows_kept
    monkeypatch.setattr(HFGenerator, "_rows_kept", staticmethod(lambda going: orders.append(o := rows_kept(going)) or o))
    for stop in sorted(set(free.flatten().tolist()), key=lambda t: -int((free == t).sum())):
        orders.clear()
        params = SamplingParams(n=1, temperature=0, max_new_tokens=steps, stop_token_ids=(stop,))
        (tokens, at_one, _, chosen), (expected, expected_at_one, _, expected_chosen) = _both_paths(
            model, tokenizer, prompts, params)
        if any(not bool((order[1:] > order[:-1]).all()) for order in orders):  # a row moved forward past others
            break
    else:
        pytest.fail("no stop token made the loop move a row from the end: pick other prompts")
    assert torch.equal(tokens, expected)
    ran = expected != tokenizer.pad_token_id
    torch.testing.assert_close(at_one[ran], expected_at_one[ran], rtol=0, atol=1e-5)
    torch.testing.assert_close(chosen[ran], expected_chosen[ran], rtol=0, atol=1e-5)
