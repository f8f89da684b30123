"""Sampling n responses per prompt from a Hugging Face causal LM, with per-token entropies.

:class:`HFGenerator` samples batches of left-padded prompts with the KV cache, longest prompts first
(equal lengths batch without padding; memory peaks early), and returns the samples in the original
order. Its own decoding loop drops each row from the batch and from the KV cache once the row has
stopped, so a batch costs the sum of its samples' lengths rather than its longest sample times the
batch size (``model.generate`` keeps every row to the end: 1.2-6x slower on the CPU,
``docs/benchmarks.md``), and its KV cache is allocated once rather than grown by concatenation at
every step (:mod:`curio.evaluation.kv_cache`). Until a row stops, it draws exactly what ``generate``
draws (the same operations on the same random stream); ``generate`` itself still runs when stop
strings are set. For every sample it records the text, the number of generated
tokens, whether it hit ``max_new_tokens`` (truncated) and the mean entropy of the model's
next-token distribution over its generated tokens, at T = 1 and at the sampling temperature.

The entropies come from :class:`EntropyRecorder`, a logits processor that sees each step's raw
logits and keeps one float per row, so memory stays at ``steps x batch`` floats instead of the
``steps x batch x vocab`` that ``output_scores`` would hold.

:mod:`curio.evaluation.vllm_generation` offers the same ``generate`` on vLLM.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterator, Sequence
from typing import Protocol

import torch
from torch import Tensor
from tqdm.auto import tqdm
from transformers import (
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    PreTrainedModel,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)
from transformers.cache_utils import Cache

from curio.evaluation.kv_cache import drops_rows, preallocated_cache
from curio.evaluation.partial import PartialSamples, batch_key
from curio.evaluation.sampling import Sample, SamplingParams
from curio.export import is_sharded
from curio.ops import entropy
from curio.rng import restore_torch_rng_json, torch_rng_json


class Generator(Protocol):
    """What the evaluation loop needs from a backend."""

    #: Positions the model can attend over (prompt + generated tokens), or None if unknown.
    context_length: int | None

    def generate(
        self, prompts: Sequence[Sequence[int]], params: SamplingParams, desc: str = "generate",
        partial: PartialSamples | None = None,
    ) -> list[list[Sample]]:
        """``params.n`` samples for each tokenized prompt: ``result[prompt][sample]``. A backend
        that samples in batches keeps each finished one in ``partial`` and resumes from it."""


class EntropyRecorder(LogitsProcessor):
    """Records each row's next-token entropy at T = 1 and at ``temperature``, and the log-probability
    of the token each step chose under the distribution at ``temperature`` (T = 1 when greedy: the
    policy an RL trainer scores); changes nothing.

    It must see the raw logits, so :class:`HFGenerator` puts it first and applies temperature,
    top-k and top-p itself after it (``generate`` is told to add no warpers of its own). A step's
    chosen token is known at the next call (the last column of ``input_ids``), so the step's
    log-probabilities are kept until then; the last step's are read in :meth:`result`.
    """

    def __init__(self, temperature: float):
        self.temperature = temperature
        self._at_one: list[Tensor] = []
        self._at_temperature: list[Tensor] = []
        self._chosen: list[Tensor] = []
        self._pending: Tensor | None = None

    def __call__(self, input_ids: Tensor, scores: Tensor) -> Tensor:
        self._take(input_ids[:, -1])
        self._at_one.append(entropy(scores))
        scaled = scores.float()
        if self.temperature not in (0, 1):
            scaled = scaled / self.temperature
            self._at_temperature.append(entropy(scaled))
        self._pending = scaled - torch.logsumexp(scaled, dim=-1, keepdim=True)
        return scores

    def _take(self, tokens: Tensor) -> None:
        if self._pending is not None:
            self._chosen.append(self._pending.gather(-1, tokens[:, None].to(self._pending.device)).squeeze(-1))
            self._pending = None

    def result(self, last_tokens: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(entropy at T = 1, entropy at the sampling temperature, log-probability of the chosen
        token at the sampling temperature)``, each ``[batch, steps]`` on the CPU; ``last_tokens``
        are the final step's."""
        self._take(last_tokens)
        at_one = torch.stack(self._at_one, dim=1).cpu()
        chosen = torch.stack(self._chosen, dim=1).cpu()
        if self.temperature == 1:
            return at_one, at_one, chosen
        if self.temperature == 0:  # greedy: the sampling distribution is a point mass
            return at_one, torch.zeros_like(at_one), chosen
        return at_one, torch.stack(self._at_temperature, dim=1).cpu(), chosen


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode (no dropout) for the block, then the previous mode back (a training run's)."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


@contextlib.contextmanager
def _explicit_generation_config(model: PreTrainedModel) -> Iterator[None]:
    # generate() fills every setting left unset with the checkpoint's generation_config.json
    # (Qwen's top_k=20, repetition_penalty=1.05, ...). Swapping in a blank one for the call makes
    # SamplingParams the only source of sampling settings, as in vLLM's SamplingParams.
    saved = model.generation_config
    model.generation_config = GenerationConfig()
    try:
        yield
    finally:
        model.generation_config = saved


def _eos_ids(model: PreTrainedModel, tokenizer, extra: Sequence[int]) -> list[int]:
    ids = {tokenizer.eos_token_id, *extra}
    configured = getattr(model.generation_config, "eos_token_id", None)
    ids.update(configured if isinstance(configured, (list, tuple)) else [configured])
    ids.discard(None)
    if not ids:
        raise ValueError("no stop token: the tokenizer has no eos_token and sampling.stop_token_ids is empty")
    return sorted(ids)


class HFGenerator:
    """Batched sampling from a ``transformers`` causal LM (see the module docstring).

    Args:
        model: a causal LM, already on its device; it is put in eval mode during generation and
            its previous mode restored. A model sharded with FSDP2 over several processes samples
            in lockstep (every rank runs forward until all are done: each forward is a
            collective), so every rank must call :meth:`generate` with as many sequences.
        tokenizer: its tokenizer (decodes responses; its EOS token stops a sample).
        batch_size: sequences sampled together (a prompt's n samples count n).
        progress: show a progress bar with samples/s.
        autocast: a context manager factory wrapping each ``generate`` call (e.g. a Lightning
            precision plugin's ``forward_context``); None for none.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer,
        batch_size: int = 64,
        progress: bool = True,
        autocast=None,
    ):
        if batch_size < 1:
            raise ValueError(f"generation.batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.progress = progress
        self.autocast = autocast or contextlib.nullcontext
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if pad is None:
            raise ValueError("the tokenizer has neither a pad token nor an EOS token")
        self.pad_id: int = pad
        self.synced_gpus = is_sharded(model) and torch.distributed.is_initialized() \
            and torch.distributed.get_world_size() > 1

    @functools.cached_property
    def _loop_fits(self) -> bool:
        """Whether the model's KV cache lets :meth:`_decode_loop` drop and move rows."""
        return drops_rows(self._new_cache(1))

    @property
    def context_length(self) -> int | None:
        return getattr(self.model.config, "max_position_embeddings", None)

    def generate(
        self, prompts: Sequence[Sequence[int]], params: SamplingParams, desc: str = "generate",
        partial: PartialSamples | None = None,
    ) -> list[list[Sample]]:
        """``params.n`` samples for each tokenized prompt, ``result[prompt][sample]``.

        The sampler is seeded with ``params.seed`` inside a forked RNG, so the caller's random
        state (a training run's) is left as it was. With ``partial``, each finished batch is
        written there, and the batches it already holds are taken from it instead of sampled
        again (the random stream continues from where they left it).
        """
        if partial is not None and self.synced_gpus:
            raise ValueError("HFGenerator: partial samples are kept by one process; this model is sharded over several")
        eos = _eos_ids(self.model, self.tokenizer, params.stop_token_ids)
        # Longest first; sorted() is stable, so a prompt's samples stay together and in order.
        jobs = sorted(
            ((p, s) for p in range(len(prompts)) for s in range(params.n)),
            key=lambda job: -len(prompts[job[0]]),
        )
        results: list[list[Sample | None]] = [[None] * params.n for _ in prompts]
        device = self.model.device
        devices = [device] if device.type == "cuda" else []
        done, state = ([], None) if partial is None else \
            partial.resume(batch_key(prompts, params, self.batch_size, device.type))
        for (p, s), sample in zip(jobs, done):
            results[p][s] = sample
        bar = tqdm(total=len(jobs), initial=len(done), desc=desc, unit="sample", disable=not self.progress,
                   leave=False)
        tokens = 0
        start = time.perf_counter()
        with torch.random.fork_rng(devices=devices), eval_mode(self.model), bar:
            torch.manual_seed(params.seed)
            if state is not None:
                restore_torch_rng_json(state, devices)
            for first in range(len(done), len(jobs), self.batch_size):
                batch = jobs[first : first + self.batch_size]
                samples = self._generate_batch([prompts[p] for p, _ in batch], params, eos)
                for (p, s), sample in zip(batch, samples):
                    results[p][s] = sample
                if partial is not None:
                    partial.append(samples, torch_rng_json(devices), time.perf_counter() - start)
                tokens += sum(sample.num_tokens for sample in samples)
                bar.update(len(batch))
                bar.set_postfix(tokens_per_s=f"{tokens / (time.perf_counter() - start):.0f}")
        return results  # type: ignore[return-value]  # every (prompt, sample) got one above

    def _generate_batch(
        self, prompts: Sequence[Sequence[int]], params: SamplingParams, eos: list[int]
    ) -> list[Sample]:
        width = max(len(p) for p in prompts)
        input_ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            # Left padding: every row's next token is at the same (last) position.
            input_ids[row, width - len(prompt) :] = torch.tensor(list(prompt), dtype=torch.long)
            attention_mask[row, width - len(prompt) :] = 1
        warpers = LogitsProcessorList()
        if not params.greedy:
            if params.temperature != 1:
                warpers.append(TemperatureLogitsWarper(params.temperature))
            if params.top_k > 0:
                warpers.append(TopKLogitsWarper(params.top_k))
            if params.top_p < 1:
                warpers.append(TopPLogitsWarper(params.top_p))
        # Stop strings, and caches whose rows cannot be dropped (linear attention), are generate's.
        run = self._decode_loop if not params.stop and self._loop_fits else self._generate_call
        generated, at_one, at_temperature, chosen = run(input_ids, attention_mask, params, eos, warpers)
        eos_set = set(eos)
        return [
            self._sample(generated[row].tolist(), at_one[row], at_temperature[row], chosen[row], params, eos_set)
            for row in range(len(prompts))
        ]

    def _generate_call(
        self, input_ids: Tensor, attention_mask: Tensor, params: SamplingParams, eos: list[int],
        warpers: LogitsProcessorList,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """One ``model.generate`` call: ``(generated tokens, entropy at T = 1, entropy at T,
        log-probability of each chosen token)``, each ``[rows, steps]`` on the CPU."""
        recorder = EntropyRecorder(params.temperature)
        processors = LogitsProcessorList([recorder, *warpers])
        # Neutral sampling settings: the processors above apply them, after the recorder.
        neutral = {} if params.greedy else {"temperature": 1.0, "top_k": 0, "top_p": 1.0}
        config = GenerationConfig(
            max_new_tokens=params.max_new_tokens,
            do_sample=not params.greedy,
            num_beams=1,
            eos_token_id=eos,
            pad_token_id=self.pad_id,
            stop_strings=list(params.stop) or None,
            use_cache=True,  # the KV cache; training turns model.config.use_cache off
            **neutral,
        )
        device = self.model.device
        with _explicit_generation_config(self.model), torch.no_grad(), self.autocast():
            sequences = self.model.generate(
                input_ids=input_ids.to(device),
                attention_mask=attention_mask.to(device),
                generation_config=config,
                logits_processor=processors,
                tokenizer=self.tokenizer if params.stop else None,
                synced_gpus=self.synced_gpus,
            )
        generated = sequences[:, input_ids.shape[1]:].cpu()
        return generated, *recorder.result(generated[:, -1])

    def _decode_loop(
        self, input_ids: Tensor, attention_mask: Tensor, params: SamplingParams, eos: list[int],
        warpers: LogitsProcessorList,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """:meth:`_generate_call`'s result from a loop of forward passes that drops each row from
        the batch (and its KV cache) once it has sampled a stop token. The KV cache is allocated
        once for the prompt and every new token (:mod:`curio.evaluation.kv_cache`).

        Every step does what ``generate`` does with :class:`EntropyRecorder` first: float32
        logits of the last position, the entropies and log-probabilities of the recorder, the
        warpers, then ``argmax`` or ``multinomial`` over the rows still running; so until a row
        stops, the tokens are ``generate``'s. Positions count real tokens only (left padding), as
        ``generate`` counts them.
        """
        rows, steps = input_ids.shape[0], params.max_new_tokens
        device = self.model.device
        tokens = torch.full((rows, steps), self.pad_id, dtype=torch.long)
        at_one, at_temperature, chosen = (torch.zeros(rows, steps) for _ in range(3))
        padded = bool((attention_mask == 0).any())
        mask = attention_mask.to(device)
        positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
        stop = torch.tensor(eos, device=device)
        running = torch.arange(rows)  # the batch's rows, as rows of the output
        scale = params.temperature not in (0, 1)
        with torch.no_grad(), self.autocast():
            cache = self._new_cache(input_ids.shape[1] + steps)
            out = self.model(input_ids=input_ids.to(device), attention_mask=mask if padded else None,
                             position_ids=positions, past_key_values=cache, use_cache=True, logits_to_keep=1)
            for step in range(steps):
                if running.numel():
                    logits = out.logits[:, -1, :].to(copy=True, dtype=torch.float32)
                    at_one[running, step] = entropy(logits).cpu()
                    scaled = logits / params.temperature if scale else logits
                    if scale:
                        at_temperature[running, step] = entropy(scaled).cpu()
                    elif params.temperature == 1:
                        at_temperature[running, step] = at_one[running, step]
                    if params.greedy:
                        picked = torch.argmax(logits, dim=-1)
                    else:
                        scores = warpers(input_ids, logits)
                        picked = torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1).squeeze(1)
                    log_probs = scaled - torch.logsumexp(scaled, dim=-1, keepdim=True)
                    chosen[running, step] = log_probs.gather(-1, picked[:, None]).squeeze(-1).cpu()
                    tokens[running, step] = picked.cpu()
                    going = ~torch.isin(picked, stop)
                else:  # (lockstep only) this rank is done: its one dummy row steps on with the others
                    going = torch.zeros_like(picked, dtype=torch.bool)
                if step == steps - 1 or not self._any_rank(bool(going.any())):
                    break
                if running.numel() and not going.all():  # forget the stopped rows, in the cache too
                    keep = self._rows_kept(going)
                    if keep.numel():
                        running = running[keep.cpu()]
                    else:  # every row stopped while another rank's still run: keep one, as a dummy
                        keep, running = keep.new_zeros(1), running[:0]
                    cache.batch_select_indices(keep)
                    picked, mask, positions = picked[keep], mask[keep], positions[keep]
                mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=-1)
                positions = positions[:, -1:] + 1
                out = self.model(input_ids=picked[:, None], attention_mask=mask if padded else None,
                                 position_ids=positions, past_key_values=cache, use_cache=True)
        return tokens, at_one, at_temperature, chosen

    @staticmethod
    def _rows_kept(going: Tensor) -> Tensor:
        """The batch's rows that go on (``going``, a bool per row), in their new order: the first
        ``kept`` rows stay in place where they go on, and each stopped one among them is replaced
        by a running row from after them. So only those few rows move in the KV cache; closing the
        gaps in order would move every row after the first stopped one, a copy of nearly the whole
        cache at each step where some row stops (a quarter of an evaluation's time in batches of 256)."""
        kept = int(going.sum())
        order = torch.arange(kept, device=going.device)
        order[~going[:kept]] = going[kept:].nonzero().squeeze(-1) + kept
        return order

    def _new_cache(self, positions: int) -> Cache:
        """An empty KV cache for a batch of up to ``positions`` positions (prompt and new tokens)."""
        return preallocated_cache(self.model.config, positions)

    def _any_rank(self, running: bool) -> bool:
        """Whether this rank's rows, or (a sharded model stepping in lockstep) any rank's, still run."""
        if not self.synced_gpus:
            return running
        flag = torch.tensor([float(running)], device=self.model.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return bool(flag.item())

    def _sample(
        self,
        ids: list[int],
        at_one: Tensor,
        at_temperature: Tensor,
        chosen: Tensor,
        params: SamplingParams,
        eos: set[int],
    ) -> Sample:
        end = next((i for i, token in enumerate(ids) if token in eos), None)
        body = ids if end is None else ids[:end]
        text = self._decode(body)
        count = len(ids) if end is None else end + 1
        stopped = end is not None
        cut = _first_stop(text, params.stop)
        if cut is not None:
            # generate() stopped this row at a stop string and padded the rest (with EOS, when
            # pad = EOS), so the text and the token count end at the string.
            text = text[:cut]
            count = self._tokens_through_stop(body, params.stop)
            stopped = True
        return Sample(
            text=text,
            num_tokens=count,
            truncated=not stopped,
            entropy=float(at_one[:count].mean()),
            entropy_sampling=float(at_temperature[:count].mean()),
            token_ids=tuple(ids[:count]),
            logprobs=tuple(chosen[:count].tolist()),
            token_entropies=tuple(at_one[:count].tolist()),
        )

    def _decode(self, ids: list[int]) -> str:
        # Special tokens stay: "<think>"-style markers may be special, and grading needs them.
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    def _tokens_through_stop(self, ids: list[int], stop: tuple[str, ...]) -> int:
        """The fewest leading tokens whose text contains a stop string (binary search)."""
        low, high = 1, len(ids)
        while low < high:
            mid = (low + high) // 2
            if _first_stop(self._decode(ids[:mid]), stop) is None:
                low = mid + 1
            else:
                high = mid
        return low


def _first_stop(text: str, stop: Sequence[str]) -> int | None:
    """Where the earliest stop string starts in ``text``, or None."""
    found = [i for i in (text.find(s) for s in stop) if i >= 0]
    return min(found) if found else None
