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
    weighting: str = "logsigmoid",
    fit: str = "dft",
    clip: tuple[float, float] = (0.2, 0.28),
    alpha: float = 1.0,
    top_k: int = 20,
    threshold: float = 0.7,
) -> Tensor:
    """One token's loss (spec sections 6-7 and the baselines' public code), differentiable in
    ``z`` (float64 ``[V]``).

    kind: ``ce``, ``entropy`` (bonus on this token iff ``bonus``), ``dft``, ``curio`` (teacher
    logits ``zt`` heated by ``tau``), ``gem`` (``beta``, ``weighting``), ``psft`` (snapshot logits
    ``zt``, ``clip``), ``anchored`` (``fit`` + ``lam`` KL to ``zt``), ``eaft`` (``alpha``,
    ``top_k``), ``sed`` (``lam``, ``top_k``, ``threshold``).
    """
    logp = log_softmax64(z)[y]
    if kind == "gem":
        q = torch.softmax(z.detach() / beta, dim=-1)
        w = torch.sigmoid(0.01 * (z.detach() - z.detach()[y])) if weighting == "logsigmoid" else torch.ones_like(z)
        logp_all = log_softmax64(z)
        return -(q * w * (logp - logp_all)).sum()
    if kind == "psft":
        old = log_softmax64(zt.double())[y]
        ratio = torch.exp(torch.clamp(logp - old, -20.0, 20.0))
        return -torch.minimum(ratio, torch.clamp(ratio, 1 - clip[0], 1 + clip[1]))
    if kind == "anchored":
        ref = log_softmax64(zt.double())
        kl = (torch.exp(ref) * (ref - log_softmax64(z))).sum()
        first = -torch.exp(logp).detach() * logp if fit == "dft" else -logp
        return first + lam * kl
    if kind == "eaft":
        top = torch.sort(z.detach(), descending=True).values[: min(top_k, z.numel())]
        weight = (entropy64(top) / 3.0) ** alpha
        return -weight * logp
    if kind == "sed":
        probs = torch.softmax(z.detach(), dim=-1)
        mass = torch.sort(probs, descending=True).values[:top_k].sum()
        mask = 1.0 if mass < threshold else 0.0
        return -logp + lam * mask * (torch.exp(logp) - 0.5) ** 2
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
