"""Accumulate per-token diagnostics over one optimizer step and reduce them across ranks."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

#: Per-token metrics whose distribution (not just mean) is logged.
QUANTILE_METRICS = ("tau", "entropy", "teacher_entropy")
QUANTILES = (0.1, 0.5, 0.9)
#: Quantiles are taken on at most this many tokens (a fixed-stride subsample), to stay cheap.
MAX_QUANTILE_TOKENS = 65536


class TokenMetricWindow:
    """Token-weighted sums of per-token metrics, plus the raw values for quantiles.

    The means are exact across micro-batches and ranks (sums and counts are all-reduced). Quantiles
    are computed on this rank's tokens only: gathering variable-length vectors across ranks would
    cost a collective per step for a diagnostic.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, Tensor] = {}
        self.counts: dict[str, int] = {}
        self.values: dict[str, list[Tensor]] = {}
        self.loss = 0.0
        self.tokens = 0
        self.loss_tokens = 0

    def add(self, token_metrics: dict[str, Tensor], loss: Tensor, tokens: Tensor, loss_tokens: Tensor) -> None:
        """Accumulate one micro-batch. Everything stays on the device: no host sync until
        :meth:`compute`, once per optimizer step."""
        self.loss = self.loss + loss.detach().double()
        self.tokens = self.tokens + tokens.double()
        self.loss_tokens = self.loss_tokens + loss_tokens.double()
        for name, values in token_metrics.items():
            values = values.detach().float()
            self.sums[name] = self.sums.get(name, 0.0) + values.double().sum()
            self.counts[name] = self.counts.get(name, 0) + values.numel()
            if name in QUANTILE_METRICS:
                self.values.setdefault(name, []).append(values)

    def compute(self, reduce_sum: Callable[[Tensor], Tensor], prefix: str) -> dict[str, float]:
        """Means (all ranks) and quantiles (this rank) as ``{prefix/name: value}``."""
        names = sorted(self.sums)
        device = self.loss.device if isinstance(self.loss, Tensor) else "cpu"
        scalars = [self.sums[n] for n in names] + [float(self.counts[n]) for n in names]
        scalars += [self.loss, self.tokens, self.loss_tokens]
        packed = torch.stack([torch.as_tensor(v, dtype=torch.float64, device=device) for v in scalars])
        packed = reduce_sum(packed).tolist()
        k = len(names)
        out = {f"{prefix}/{n}": packed[i] / max(packed[k + i], 1.0) for i, n in enumerate(names)}
        out[f"{prefix}/loss"] = packed[2 * k]
        out[f"{prefix}/tokens"] = packed[2 * k + 1]
        out[f"{prefix}/loss_tokens"] = packed[2 * k + 2]
        for name, chunks in self.values.items():
            values = torch.cat(chunks)
            if values.numel() == 0:
                continue
            stride = max(1, values.numel() // MAX_QUANTILE_TOKENS)
            qs = torch.quantile(values[::stride], torch.tensor(QUANTILES, device=values.device))
            for q, v in zip(QUANTILES, qs.tolist()):
                out[f"{prefix}/{name}_p{round(q * 100)}"] = v
        return out
