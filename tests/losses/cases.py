"""Loss cases shared by the loss tests: random loss positions, heads and teachers, the module run,
and a float64 reference run written from the spec (``loss_reference``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from curio.losses import LossInputs
from curio.teacher.base import ProjectedLogits
from tests.losses.loss_reference import entropy64, tau64, token_loss64

V, H, B, T = 600, 16, 3, 16
# Logit scale per position: x30 peaked (mostly gated), x0.01 flat (tau_max), and the range
# between, where tau is interior or clamped at tau_min.
SCALES = torch.tensor([30.0, 0.01, 1.0, 3.0, 6.0, 12.0])
NORMALIZER = 5.0


@dataclass
class Case:
    hidden: Tensor  # [N, H] float32, the loss positions of a [B, T] batch under a random mask
    targets: Tensor  # [N]
    head: nn.Linear  # [H -> V]
    teacher_hidden: Tensor  # [N, H]
    teacher_head: nn.Linear


def make_case(n_tokens: int, seed: int = 0) -> Case:
    g = torch.Generator().manual_seed(seed)
    scale = SCALES[torch.randint(len(SCALES), (B, T), generator=g)][..., None]
    full = torch.randn(B, T, H, generator=g) * scale
    teacher_full = full + 0.2 * scale * torch.randn(B, T, H, generator=g)
    mask = torch.zeros(B * T, dtype=torch.bool)
    mask[torch.randperm(B * T, generator=g)[:n_tokens]] = True
    mask = mask.view(B, T)
    head, teacher_head = nn.Linear(H, V, bias=False), nn.Linear(H, V, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.randn(V, H, generator=g) / math.sqrt(H))
        teacher_head.weight.copy_(head.weight + 0.1 * torch.randn(V, H, generator=g) / math.sqrt(H))
    return Case(
        hidden=full[mask].requires_grad_(),
        targets=torch.randint(V, (B, T), generator=g)[mask],
        head=head,
        teacher_hidden=teacher_full[mask],
        teacher_head=teacher_head,
    )


def run_module(loss: nn.Module, case: Case) -> tuple[Tensor, dict[str, Tensor], Tensor, Tensor]:
    """Loss, metrics, and gradients w.r.t. hidden and the head weight."""
    hidden = case.hidden.detach().clone().requires_grad_()
    case.head.weight.grad = None
    teacher = ProjectedLogits(case.teacher_hidden, case.teacher_head, fp32=True) if loss.needs_teacher else None
    out = loss(LossInputs(hidden=hidden, targets=case.targets, head=case.head, teacher=teacher))
    total = out.loss_sum / NORMALIZER
    total.backward()
    return total.detach(), out.token_metrics, hidden.grad, case.head.weight.grad.clone()


def run_reference(kind: str, case: Case, float32_logits: bool = False, **kw) -> tuple[Tensor, Tensor, Tensor]:
    """Float64 loss and gradients, one token at a time.

    ``float32_logits``: the logits are the float32 projection (as the module computes them),
    promoted, so the comparison isolates the loss's own arithmetic from the projection's rounding
    (~1e-6 of the logits, which a loss made of small differences can carry to ~1e-6 of its value).
    """
    h = case.hidden.detach().double().requires_grad_()
    w = case.head.weight.detach().double().requires_grad_()
    if float32_logits:  # whole-batch products, as the module's (a row at a time rounds differently)
        z32 = (case.hidden.detach() @ case.head.weight.detach().T).double()
        zt32 = (case.teacher_hidden @ case.teacher_head.weight.detach().T).double()
    n = h.shape[0]
    bonus = [True] * n
    if kw.get("top_fraction") is not None:
        ent = [float(entropy64(h[t].detach() @ w.detach().T)) for t in range(n)]
        k = min(n, max(1, math.ceil(kw["top_fraction"] * n - 1e-9)))
        chosen = sorted(range(n), key=lambda t: -ent[t])[:k]
        bonus = [t in chosen for t in range(n)]
    total = (h.sum() + w.sum()) * 0.0
    for t in range(n):
        args = {}
        if float32_logits:
            zt = zt32[t]
        else:
            zt = case.teacher_hidden[t].double() @ case.teacher_head.weight.detach().double().T
        if kind == "curio":
            args = {"zt": zt, "tau": kw.get("tau") or tau64(zt)[0], "lam": kw["lam"]}
        elif kind == "entropy":
            args = {"beta": kw["beta"], "bonus": bonus[t]}
        elif kind in ("psft", "anchored"):
            args = {"zt": zt, **kw}
        else:
            args = kw
        z = z32[t] + 0.0 * (h[t].sum() + w.sum()) if float32_logits else h[t] @ w.T
        total = total + token_loss64(kind, z, int(case.targets[t]), **args)
    total = total / NORMALIZER
    total.backward()
    return total.detach(), h.grad, w.grad


def assert_close_rel(actual: Tensor, expected: Tensor, rel: float) -> None:
    """Max abs error within ``rel`` times the reference's largest magnitude."""
    err = (actual.double() - expected.double()).abs().max().item() if actual.numel() else 0.0
    scale = expected.double().abs().max().item() if expected.numel() else 0.0
    assert err <= rel * max(scale, 1e-30) or err == 0.0, f"max error {err:.3e} vs scale {scale:.3e}"
