"""Every loss against its float64 reference (spec sections 6-7), plain and chunked, N = 0, 1, many."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch
from tests.losses.loss_reference import entropy64, log_softmax64, tau64, token_loss64
from torch import Tensor, nn

from curio.losses import CrossEntropyLoss, CurioLoss, DFTLoss, EntropyRegularizedLoss, LossInputs
from curio.temperature import EntropyGuidedTemperature, FixedTemperature

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


# name -> (factory(chunk_size) , reference kind, reference kwargs)
LOSSES = {
    "ce": (lambda c: CrossEntropyLoss(chunk_size=c), "ce", {}),
    "entropy": (lambda c: EntropyRegularizedLoss(beta=0.1, chunk_size=c), "entropy", {"beta": 0.1}),
    "entropy_top": (
        lambda c: EntropyRegularizedLoss(beta=0.1, top_fraction=0.2, chunk_size=c),
        "entropy",
        {"beta": 0.1, "top_fraction": 0.2},
    ),
    "dft": (lambda c: DFTLoss(chunk_size=c), "dft", {}),
    "curio": (lambda c: CurioLoss(EntropyGuidedTemperature(), chunk_size=c), "curio", {"lam": 1.0}),
    "curio_fixed": (
        lambda c: CurioLoss(FixedTemperature(tau=1.3), lam=0.7, chunk_size=c),
        "curio",
        {"lam": 0.7, "tau": 1.3},
    ),
}


def run_module(loss: nn.Module, case: Case) -> tuple[Tensor, dict[str, Tensor], Tensor, Tensor]:
    """Loss, metrics, and gradients w.r.t. hidden and the head weight."""
    hidden = case.hidden.detach().clone().requires_grad_()
    case.head.weight.grad = None
    out = loss(
        LossInputs(
            hidden=hidden,
            targets=case.targets,
            head=case.head,
            normalizer=NORMALIZER,
            teacher_hidden=case.teacher_hidden if loss.needs_teacher else None,
            teacher_head=case.teacher_head if loss.needs_teacher else None,
        )
    )
    out.loss.backward()
    return out.loss.detach(), out.token_metrics, hidden.grad, case.head.weight.grad.clone()


def run_reference(kind: str, case: Case, **kw) -> tuple[Tensor, Tensor, Tensor]:
    """Float64 loss and gradients, one token at a time."""
    h = case.hidden.detach().double().requires_grad_()
    w = case.head.weight.detach().double().requires_grad_()
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
        if kind == "curio":
            zt = case.teacher_hidden[t].double() @ case.teacher_head.weight.detach().double().T
            args = {"zt": zt, "tau": kw.get("tau") or tau64(zt)[0], "lam": kw["lam"]}
        elif kind == "entropy":
            args = {"beta": kw["beta"], "bonus": bonus[t]}
        total = total + token_loss64(kind, h[t] @ w.T, int(case.targets[t]), **args)
    total = total / NORMALIZER
    total.backward()
    return total.detach(), h.grad, w.grad


def assert_close_rel(actual: Tensor, expected: Tensor, rel: float) -> None:
    """Max abs error within ``rel`` times the reference's largest magnitude."""
    err = (actual.double() - expected.double()).abs().max().item() if actual.numel() else 0.0
    scale = expected.double().abs().max().item() if expected.numel() else 0.0
    assert err <= rel * max(scale, 1e-30) or err == 0.0, f"max error {err:.3e} vs scale {scale:.3e}"


@pytest.mark.parametrize("n_tokens", [0, 1, 37])
@pytest.mark.parametrize("name", list(LOSSES))
def test_matches_float64_reference(name: str, n_tokens: int) -> None:
    factory, kind, kw = LOSSES[name]
    case = make_case(n_tokens)
    ref_loss, ref_gh, ref_gw = run_reference(kind, case, **kw)
    for chunk in (None, 8):  # 8 does not divide 37
        loss, _, gh, gw = run_module(factory(chunk), case)
        if n_tokens == 0:
            assert loss.item() == 0.0
            assert torch.count_nonzero(gh) == 0 and torch.count_nonzero(gw) == 0
            continue
        assert abs(loss.item() - ref_loss.item()) <= 1e-6 * abs(ref_loss.item()), (chunk, loss, ref_loss)
        assert_close_rel(gh, ref_gh, 1e-5)
        assert_close_rel(gw, ref_gw, 1e-5)


@pytest.mark.parametrize("name", list(LOSSES))
def test_chunked_equals_plain(name: str) -> None:
    factory, _, _ = LOSSES[name]
    case = make_case(37, seed=1)
    loss_p, metrics_p, gh_p, gw_p = run_module(factory(None), case)
    loss_c, metrics_c, gh_c, gw_c = run_module(factory(8), case)
    torch.testing.assert_close(loss_c, loss_p, rtol=1e-6, atol=0)
    torch.testing.assert_close(gh_c, gh_p, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(gw_c, gw_p, rtol=1e-5, atol=1e-7)
    assert metrics_c.keys() == metrics_p.keys()
    for key in metrics_p:
        assert metrics_c[key].shape == (37,)
        torch.testing.assert_close(metrics_c[key], metrics_p[key], rtol=1e-5, atol=1e-6)
