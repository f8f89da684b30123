"""One temperature for every token: the paper's ablation "without entropy-guided selection"."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from curio.temperature.base import TemperatureResult, TemperatureRule


@dataclass(frozen=True)
class FixedTemperature(TemperatureRule):
    """``tau_t = tau`` for every token.

    Args:
        tau: the temperature. The spec does not state the ablation's value; the default 1.3 is the
            midpoint of the entropy-guided search range [tau_min, tau_max] = [1.1, 1.5], so the
            ablation heats by the same order of magnitude as the adaptive rule and differs only in
            not choosing per token. Set it to whatever the ablation under study used.
    """

    tau: float = 1.3

    def __post_init__(self) -> None:
        if not self.tau > 0:
            raise ValueError(f"temp.tau must be > 0, got {self.tau}")

    def __call__(self, logits: Tensor, entropy: Tensor | None = None) -> TemperatureResult:
        n, device = logits.shape[0], logits.device
        tau = torch.full((n,), self.tau, dtype=torch.float32, device=device)
        flags = torch.zeros(3, n, dtype=torch.bool, device=device)
        return TemperatureResult(tau=tau, gated=flags[0], at_min=flags[1], at_max=flags[2])
