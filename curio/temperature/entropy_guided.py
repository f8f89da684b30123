"""Entropy-guided temperature selection (spec section 5): hotter teachers where the teacher is unsure."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from curio import ops
from curio.temperature.base import TemperatureResult, TemperatureRule


@dataclass(frozen=True)
class EntropyGuidedTemperature(TemperatureRule):
    """Per token, the temperature that raises the teacher's top-K entropy by ``delta(H0)``.

    With ``H_K(tau)`` the entropy of ``softmax(topK(z) / tau)`` (renormalised over the K largest
    logits) and ``H0 = H_K(1)``::

        target = H0 + delta_max * sigmoid(slope * (H0 - h_pivot))
        tau    = the tau in [tau_min, tau_max] with H_K(tau) = target  (bisection)
                 tau_min if target <= H_K(tau_min);  tau_max if target >= H_K(tau_max)
        tau    = tau_min where the full-vocabulary entropy H(softmax(z)) <= gate_entropy

    Everything runs in float32 whatever the logits' dtype (bf16 would quantise tau to steps of
    about 0.008), vectorised over tokens: only tokens the gate leaves open get a top K, and each
    bisection step evaluates every token not clamped to tau_min or tau_max at once on its ``[K]``
    values, so the search costs ``iterations`` passes over at most ``[n, K]``, never ``[n, V]``.

    Args (authors' defaults):
        top_k: K, logits kept for the entropy that picks tau; clipped to the vocabulary size.
        delta_max: the largest entropy increase, reached for high-entropy tokens (nats).
        slope: steepness of the sigmoid in H0 (per nat).
        h_pivot: H0 at which the increase is half of delta_max (nats).
        tau_min, tau_max: the search range; every token gets tau >= tau_min.
        iterations: bisection steps; tau is within (tau_max - tau_min) / 2**(iterations + 1)
            of the exact root (in exact arithmetic).
        gate_entropy: full-vocabulary entropy (nats) at or below which tau = tau_min (the token
            is treated as factual); None disables the gate.
    """

    top_k: int = 512
    delta_max: float = 0.5
    slope: float = 2.0
    h_pivot: float = 1.2
    tau_min: float = 1.1
    tau_max: float = 1.5
    iterations: int = 20
    gate_entropy: float | None = 0.03

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise ValueError(f"temp.top_k must be >= 1, got {self.top_k}")
        if self.delta_max < 0:
            raise ValueError(f"temp.delta_max must be >= 0, got {self.delta_max}")
        if not self.tau_min > 0:
            raise ValueError(f"temp.tau_min must be > 0, got {self.tau_min}")
        if self.tau_min > self.tau_max:
            raise ValueError(f"temp.tau_min ({self.tau_min}) must be <= temp.tau_max ({self.tau_max})")
        if self.iterations < 0:
            raise ValueError(f"temp.iterations must be >= 0, got {self.iterations}")
        if self.gate_entropy is not None and self.gate_entropy < 0:
            raise ValueError(f"temp.gate_entropy must be >= 0 or null, got {self.gate_entropy}")

    def delta(self, h0: Tensor) -> Tensor:
        """``[n] -> [n]`` the target entropy increase for a top-K entropy ``h0`` (nats)."""
        return self.delta_max * torch.sigmoid(self.slope * (h0 - self.h_pivot))

    @torch.no_grad()
    def __call__(self, logits: Tensor, entropy: Tensor | None = None) -> TemperatureResult:
        z = logits.float()
        if entropy is None:
            entropy = ops.entropy(z)
        gated = (
            entropy.float() <= self.gate_entropy
            if self.gate_entropy is not None
            else torch.zeros(z.shape[0], dtype=torch.bool, device=z.device)
        )
        tau = torch.full_like(entropy, self.tau_min, dtype=torch.float32)
        at_min, at_max = torch.zeros_like(gated), torch.zeros_like(gated)
        # A gated token's tau is tau_min whatever its top K: only the others are searched (on
        # real reasoning traces most tokens are near-deterministic).
        searched = (~gated).nonzero().squeeze(-1)
        if searched.numel():
            rows = z if searched.numel() == z.shape[0] else z[searched]
            tau[searched], at_min[searched], at_max[searched] = self._search(rows)
        return TemperatureResult(tau=tau, gated=gated, at_min=at_min, at_max=at_max)

    def _search(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``[m, V] -> ([m], [m], [m])`` tau of each row by the top-K rule, and whether it is
        clamped at tau_min / tau_max."""
        top = ops.top_k_values(z, min(self.top_k, z.shape[-1]))  # [m, K]
        h_k = ops.EntropyAtTemperatures(top)  # shifts the largest logit to 0 before any division
        h0 = h_k(1.0)
        target = h0 + self.delta(h0)
        at_min = target <= h_k(self.tau_min)
        at_max = ~at_min & (target >= h_k(self.tau_max))
        tau = torch.where(at_min, self.tau_min, self.tau_max)

        # H_K rises with tau, so keep [lo, hi] around the root of every unclamped row at once.
        open_rows = (~at_min & ~at_max).nonzero().squeeze(-1)
        h_k, target = h_k.rows(open_rows), target[open_rows]
        lo = torch.full_like(target, self.tau_min)
        hi = torch.full_like(target, self.tau_max)
        for _ in range(self.iterations):
            mid = (lo + hi) / 2
            hot_enough = h_k(mid) >= target
            hi = torch.where(hot_enough, mid, hi)
            lo = torch.where(hot_enough, lo, mid)
        tau[open_rows] = (lo + hi) / 2
        return tau, at_min, at_max
