"""Float64 reference implementations, written from the spec (sections 5-7) with explicit per-token
loops and formulas. Nothing here imports curio: a shared bug cannot hide in both sides of a test."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def log_softmax64(z: Tensor) -> Tensor:
    """``[V]`` float64 log-softmax, written out."""
    m = z.max()
    return z - m - torch.log(torch.exp(z - m).sum())


def entropy64(z: Tensor) -> Tensor:
    """Entropy (nats) of ``softmax(z)`` for one ``[V]`` float64 row."""
    logp = log_softmax64(z)
    return -(torch.exp(logp) * logp).sum()


def tau64(
    z: Tensor,
    top_k: int = 512,
    delta_max: float = 0.5,
    slope: float = 2.0,
    h_pivot: float = 1.2,
    tau_min: float = 1.1,
    tau_max: float = 1.5,
    gate_entropy: float | None = 0.03,
) -> tuple[float, str]:
    """Spec section 5 for one ``[V]`` row: the exact temperature (bisection to float64 precision)
    and why: ``gated``, ``at_min``, ``at_max`` or ``interior``."""
    z = z.double()
    top = torch.sort(z, descending=True).values[: min(top_k, z.numel())]

    def h_k(tau: float) -> float:
        return float(entropy64(top / tau))

    h0 = h_k(1.0)
    target = h0 + delta_max / (1.0 + math.exp(-slope * (h0 - h_pivot)))
    if gate_entropy is not None and float(entropy64(z)) <= gate_entropy:
        return tau_min, "gated"
    if target <= h_k(tau_min):
        return tau_min, "at_min"
    if target >= h_k(tau_max):
        return tau_max, "at_max"
    lo, hi = tau_min, tau_max
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if h_k(mid) >= target:
            hi = mid
        else:
            lo = mid
    return 0.5 * (lo + hi), "interior"


def token_loss64(
    kind: str,
    z: Tensor,
    y: int,
    *,
    beta: float = 0.0,
    bonus: bool = True,
    zt: Tensor | None = None,
    tau: float = 1.0,
    lam: float = 1.0,
) -> Tensor:
    """One token's loss (spec sections 6-7), differentiable in ``z`` (float64 ``[V]``).

    kind: ``ce``, ``entropy`` (bonus on this token iff ``bonus``), ``dft``, or ``curio`` (teacher
    logits ``zt`` heated by ``tau``).
    """
    logp = log_softmax64(z)[y]
    if kind == "ce":
        return -logp
    if kind == "entropy":
        return -logp - (beta * entropy64(z) if bonus else 0.0)
    if kind == "dft":
        return -torch.exp(logp).detach() * logp
    if kind == "curio":
        logq = log_softmax64(zt.double() / tau)[y]
        return -logp + lam * 0.5 * (logp - logq) ** 2
    raise ValueError(kind)
