"""The baselines' specifics beyond their float64 references: entropy-regularised SFT and DFT (spec
section 7), GEM, PSFT, ASFT / SFT + KL, EAFT and SED-SFT (their public code)."""

from __future__ import annotations

import math

import pytest
import torch

from curio.losses import AnchoredLoss, DFTLoss, EAFTLoss, EntropyRegularizedLoss, GEMLoss, LossInputs, PSFTLoss, SEDLoss
from curio.teacher.base import ProjectedLogits
from tests.losses.cases import make_case, run_module


def logits_grad(loss, z: torch.Tensor, y: torch.Tensor, teacher_logits: torch.Tensor | None = None) -> torch.Tensor:
    """The gradient of the summed loss in the logits themselves (an identity head)."""
    n, v = z.shape
    head = torch.nn.Linear(v, v, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.eye(v))
    hidden = z.detach().clone().requires_grad_()
    teacher = None if teacher_logits is None else ProjectedLogits(teacher_logits, head, fp32=True)
    loss(LossInputs(hidden=hidden, targets=y, head=head, teacher=teacher)).loss_sum.backward()
    return hidden.grad


@pytest.mark.parametrize(
    ("rho", "n", "k"), [(0.2, 15, 3), (0.2, 37, 8), (0.2, 1, 1), (1.0, 37, 37), (0.5, 3, 2)]
)
def test_top_fraction_selects_ceil_rho_n_highest_entropy_tokens(rho: float, n: int, k: int) -> None:
    assert k == max(1, math.ceil(round(rho * n, 9)))
    case = make_case(n, seed=3)
    _, m, _, _ = run_module(EntropyRegularizedLoss(beta=0.5, top_fraction=rho, chunk_size=4), case)
    chosen = m["entropy_bonus"] > 0
    assert int(chosen.sum()) == k
    # Selected tokens are those of highest entropy, and the bonus is beta * H there.
    if k < n:
        assert m["entropy"][chosen].min() >= m["entropy"][~chosen].max()
    torch.testing.assert_close(m["entropy_bonus"][chosen], 0.5 * m["entropy"][chosen])


def test_bonus_on_every_token_without_top_fraction() -> None:
    case = make_case(10)
    loss, m, _, _ = run_module(EntropyRegularizedLoss(beta=0.2, chunk_size=3), case)
    torch.testing.assert_close(m["entropy_bonus"], 0.2 * m["entropy"])
    torch.testing.assert_close(loss, (m["ce"] - m["entropy_bonus"]).sum() / 5.0)


def test_entropy_validation() -> None:
    for bad in (0.0, 1.5, -0.2):
        with pytest.raises(ValueError, match="loss.top_fraction must be in"):
            EntropyRegularizedLoss(top_fraction=bad)


def test_dft_weight_is_the_gold_probability() -> None:
    case = make_case(12)
    loss, m, _, _ = run_module(DFTLoss(chunk_size=5), case)
    torch.testing.assert_close(m["dft_weight"], torch.exp(-m["ce"]))
    torch.testing.assert_close(loss, (m["dft_weight"] * m["ce"]).sum() / 5.0)


def test_gem_linear_gradient_is_q_minus_the_gold_one_hot() -> None:
    """Their note: with w = 1 the gradient in the logits is softmax(z / beta) - onehot(y)."""
    g = torch.Generator().manual_seed(0)
    z, y = torch.randn(5, 40, generator=g) * 3, torch.randint(40, (5,), generator=g)
    grad = logits_grad(GEMLoss(beta=0.7, weighting="linear", chunk_size=2), z, y)
    expected = torch.softmax(z / 0.7, -1) - torch.nn.functional.one_hot(y, 40)
    torch.testing.assert_close(grad, expected, rtol=0, atol=1e-6)


def test_psft_clip_stops_the_gradient_only_above_the_range() -> None:
    """r above 1 + clip_high: no gradient; below 1 - clip_low: r * (-grad log p), unclipped."""
    g = torch.Generator().manual_seed(1)
    z, y = torch.randn(3, 30, generator=g), torch.randint(30, (3,), generator=g)
    shift = torch.zeros(3, 30)
    shift[0, y[0]] = -1.0  # the snapshot found the gold token less likely: r > 1.28
    shift[1, y[1]] = +1.0  # more likely: r < 0.8
    grad = logits_grad(PSFTLoss(chunk_size=None), z, y, teacher_logits=z + shift)
    assert torch.count_nonzero(grad[0]) == 0
    logp = torch.log_softmax(z, -1)
    ratio = torch.exp(logp[1, y[1]] - torch.log_softmax(z[1] + shift[1], -1)[y[1]])
    expected = ratio * (torch.softmax(z[1], -1) - torch.nn.functional.one_hot(y[1], 30))
    torch.testing.assert_close(grad[1], expected, rtol=1e-5, atol=1e-7)
    # r = 1 (no shift): cross-entropy's gradient.
    torch.testing.assert_close(grad[2], torch.softmax(z[2], -1) - torch.nn.functional.one_hot(y[2], 30), rtol=1e-5,
                               atol=1e-7)


@pytest.mark.parametrize("fit", ["dft", "ce"])
def test_anchored_kl_gradient_is_p_minus_p_ref(fit: str) -> None:
    """The KL term adds kl_coef * (p_theta - p_ref) to the fit term's gradient; against the model
    itself it adds nothing."""
    g = torch.Generator().manual_seed(2)
    z, zt, y = torch.randn(4, 50, generator=g) * 2, torch.randn(4, 50, generator=g) * 2, torch.randint(50, (4,), generator=g)
    with_kl = logits_grad(AnchoredLoss(fit, kl_coef=0.3, chunk_size=3), z, y, teacher_logits=zt)
    without = logits_grad(AnchoredLoss(fit, kl_coef=0.0, chunk_size=3), z, y, teacher_logits=zt)
    torch.testing.assert_close(with_kl - without, 0.3 * (torch.softmax(z, -1) - torch.softmax(zt, -1)), rtol=0,
                               atol=1e-6)
    itself = logits_grad(AnchoredLoss(fit, kl_coef=0.3, chunk_size=3), z, y, teacher_logits=z)
    torch.testing.assert_close(itself, without, rtol=0, atol=1e-6)


def test_eaft_weight_is_below_one_and_zero_when_certain() -> None:
    z = torch.zeros(3, 100)
    z[1, :20] = 5.0  # flat over the top 20: H = ln 20, the largest possible
    z[2, 0] = 100.0  # certain
    y = torch.tensor([0, 0, 0])
    hidden = z.clone().requires_grad_()
    head = torch.nn.Linear(100, 100, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.eye(100))
    m = EAFTLoss(chunk_size=None)(LossInputs(hidden=hidden, targets=y, head=head)).token_metrics
    torch.testing.assert_close(m["eaft_weight"][:2], torch.full((2,), math.log(20) / 3.0))
    assert m["eaft_weight"][2] < 1e-30


def test_sed_penalises_only_uncertain_positions() -> None:
    z = torch.zeros(2, 10)
    z[0, 0] = 10.0  # certain: top-2 mass ~1 > 0.7, no penalty
    y = torch.tensor([0, 0])
    head = torch.nn.Linear(10, 10, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.eye(10))
    m = SEDLoss(lam=1.0, chunk_size=None)(LossInputs(hidden=z.clone().requires_grad_(), targets=y,
                                                     head=head)).token_metrics
    assert m["sed_mask"].tolist() == [0.0, 1.0]  # uniform over 10: top-2 mass 0.2 < 0.7
    torch.testing.assert_close(m["sed_penalty"][1], torch.tensor((0.1 - 0.5) ** 2))


def test_baseline_validation() -> None:
    with pytest.raises(ValueError, match="loss.weighting must be one of"):
        GEMLoss(weighting="log")
    with pytest.raises(ValueError, match="loss.beta must be > 0"):
        GEMLoss(beta=0)
    with pytest.raises(ValueError, match="loss.fit must be one of"):
        AnchoredLoss("kl")
    with pytest.raises(ValueError, match="clip_low must be in"):
        PSFTLoss(clip_low=1.0)
    with pytest.raises(ValueError, match="loss.threshold must be in"):
        SEDLoss(threshold=0.0)
    with pytest.raises(ValueError, match="loss.alpha must be >= 0"):
        EAFTLoss(top_k=0)
