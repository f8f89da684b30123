"""What to sample and what a sample is: plain data, shared by every generation backend.

Kept free of torch and transformers so that configs can be checked before anything heavy loads.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SamplingParams:
    """How to sample.

    Attributes:
        n: samples per prompt.
        temperature: sampling temperature; 0 means greedy decoding.
        top_p: nucleus sampling mass (1.0: off).
        top_k: keep the k most likely tokens (0: off).
        max_new_tokens: a sample that reaches this many tokens without stopping is truncated.
        stop: strings that end a sample (excluded from its text), besides the stop tokens.
        stop_token_ids: tokens that end a sample, besides the tokenizer's and the model's EOS.
        seed: seeds the sampler at the start of every :meth:`Generator.generate` call.
    """

    n: int = 1
    temperature: float = 0.6
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 512
    stop: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        # Hydra hands lists; tuples keep the dataclass hashable and immutable.
        object.__setattr__(self, "stop", tuple(self.stop))
        object.__setattr__(self, "stop_token_ids", tuple(int(t) for t in self.stop_token_ids))
        checks = [
            ("n", self.n >= 1, "must be >= 1"),
            ("temperature", self.temperature >= 0, "must be >= 0 (0: greedy)"),
            ("top_p", 0 < self.top_p <= 1, "must be in (0, 1]"),
            ("top_k", self.top_k >= 0, "must be >= 0 (0: off)"),
            ("max_new_tokens", self.max_new_tokens >= 1, "must be >= 1"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise ValueError(f"sampling.{name}={getattr(self, name)}: {rule}")
        if any(not s for s in self.stop):
            raise ValueError("sampling.stop: stop strings must be non-empty")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass(frozen=True)
class Sample:
    """One generated response.

    Attributes:
        text: the response, up to (not including) its EOS token or stop string.
        num_tokens: generated tokens, the EOS token or the stop string's tokens included.
        truncated: it reached ``max_new_tokens`` without an EOS token or a stop string.
        entropy: mean over its generated tokens of the entropy (nats) of the model's next-token
            distribution at T = 1; None when the backend cannot compute it (vLLM).
        entropy_sampling: the same at the sampling temperature (0 for greedy decoding), before
            top-p/top-k truncation; None when unavailable.
        token_ids: the ``num_tokens`` generated token ids (what an RL update trains on).
        logprobs: for each generated token, its log-probability under the distribution it was
            sampled from, at the sampling temperature before top-k/top-p (HF; vLLM's is after
            them), in the sampler's own forward pass (what the RL trainer recomputes; their gap
            catches stale sampler weights); None when unavailable.
        token_entropies: for each generated token, the entropy (nats) of the distribution at T = 1
            it was drawn from (``entropy`` is their mean); None when unavailable.
    """

    text: str
    num_tokens: int
    truncated: bool
    entropy: float | None = None
    entropy_sampling: float | None = None
    token_ids: tuple[int, ...] = ()
    logprobs: tuple[float, ...] | None = None
    token_entropies: tuple[float, ...] | None = None
