"""Token math (curio/ops.py) against float64 computations, at Qwen's 151,936-token vocabulary too."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from curio.ops import (
    EntropyAtTemperatures,
    computes_in_float32,
    entropy,
    log_softmax,
    project,
    target_logprob,
    target_logprob_at,
    top_k_values,
)

QWEN_VOCAB = 151_936
GATE = 0.03  # the CurioSFT gate (spec section 5)


def entropy64(z: torch.Tensor) -> torch.Tensor:
    """``[n, V] -> [n]`` float64 entropy, written out."""
    z = z.double()
    logp = z - z.max(-1, keepdim=True).values
    logp = logp - logp.exp().sum(-1, keepdim=True).log()
    p = logp.exp()
    return -(p * torch.where(p > 0, logp, 0.0)).sum(-1)


def qwen_sized_rows() -> torch.Tensor:
    """Realistic logit rows at V = 151,936: flat to peaked, and a sweep of near-deterministic rows
    whose entropy crosses the 0.03 gate."""
    g = torch.Generator().manual_seed(0)
    rows = [torch.randn(4, QWEN_VOCAB, generator=g) * s for s in (0.05, 1.0, 2.5)]
    peaked = torch.randn(40, QWEN_VOCAB, generator=g) * 2.0
    peaked[:, 7] += torch.linspace(17.0, 24.0, 40)  # entropies from ~0.4 down to ~0.001 nats
    return torch.cat(rows + [peaked])


def test_entropy_is_float64_accurate_at_the_qwen_vocabulary() -> None:
    z = qwen_sized_rows()
    ref = entropy64(z)
    with torch.no_grad():
        got = entropy(z)
    assert got.dtype == torch.float32
    err = (got.double() - ref).abs()
    assert err.max() <= 2e-6, err.max()
    near_gate = (ref > 0.01) & (ref < 0.1)
    assert near_gate.sum() >= 5 and err[near_gate].max() <= 1e-7, err[near_gate].max()
    # The reason for curio.ops: float32 log_softmax is off by far more here.
    logp = torch.log_softmax(z, dim=-1)
    assert (-(logp.exp() * logp).sum(-1).double() - ref).abs().max() > 10 * err.max()


def test_the_gate_decision_matches_float64_outside_a_1e6_band() -> None:
    """Rows placed at 0.03 nats +- 3e-6 .. 1e-4 (float64): the gate fires exactly where it should."""
    g = torch.Generator().manual_seed(1)
    base = torch.randn(QWEN_VOCAB, generator=g, dtype=torch.float64) * 2.0
    lo, hi = 0.0, 40.0  # the offset of one logit that puts the row's entropy at the gate
    for _ in range(60):
        mid = (lo + hi) / 2
        row = base.clone()
        row[3] += mid
        lo, hi = (mid, hi) if entropy64(row[None]).item() > GATE else (lo, mid)
    offsets = lo + torch.tensor([-3e-3, -1e-3, -3e-4, -1e-4, 1e-4, 3e-4, 1e-3, 3e-3], dtype=torch.float64)
    z = base.repeat(len(offsets), 1)
    z[:, 3] += offsets
    z = z.float()
    ref = entropy64(z)
    assert (ref <= GATE).sum() == 4 and ((ref - GATE).abs() < 2e-4).all()
    with torch.no_grad():
        fires = entropy(z) <= GATE
    disagree = fires != (ref <= GATE)
    assert ((ref[disagree] - GATE).abs() <= 1e-6).all(), (ref - GATE)[disagree]
    # float32 log_softmax gets some of these wrong.
    logp = torch.log_softmax(z, dim=-1)
    assert ((-(logp.exp() * logp).sum(-1) <= GATE) != (ref <= GATE)).any()


def test_entropy_gradient_matches_float64() -> None:
    g = torch.Generator().manual_seed(2)
    z = (torch.randn(6, 3000, generator=g) * torch.tensor([0.01, 1, 3, 8, 20, 40])[:, None]).requires_grad_()
    entropy(z).sum().backward()
    z64 = z.detach().double().requires_grad_()
    entropy64(z64).sum().backward()
    torch.testing.assert_close(z.grad.double(), z64.grad, rtol=0, atol=1e-6 * z64.grad.abs().max().item())


def test_entropy_edge_cases() -> None:
    flat = torch.zeros(2, 1000)
    torch.testing.assert_close(entropy(flat), torch.full((2,), math.log(1000)), rtol=1e-6, atol=0)
    one_token = torch.randn(3, 1)
    assert (entropy(one_token) == 0).all()
    peaked = torch.zeros(1, 1000)
    peaked[0, 5] = 200.0  # the others have probability ~e^-200
    assert entropy(peaked).item() == 0.0
    # Masked vocabulary: -inf logits count for nothing and get a zero, finite gradient.
    z = torch.randn(3, 500)
    masked = torch.cat([z, torch.full((3, 100), float("-inf"))], dim=-1).requires_grad_()
    h = entropy(masked)
    torch.testing.assert_close(h, entropy(z), rtol=1e-6, atol=1e-7)
    h.sum().backward()
    assert torch.isfinite(masked.grad).all() and (masked.grad[:, 500:] == 0).all()
    with torch.no_grad():
        torch.testing.assert_close(entropy(masked.detach()), h.detach(), rtol=0, atol=0)


def test_log_softmax_keeps_the_small_mass_of_peaked_rows() -> None:
    """A KL between two close peaked distributions is a sum of small differences of
    log-probabilities: float32 ``torch.log_softmax`` loses the tail's mass in ``log(1 + tiny)``,
    ``curio.ops.log_softmax`` keeps it. Values, a KL built from them, and the gradient."""
    z = qwen_sized_rows()[-20:]  # near-deterministic rows
    zq = z + 0.01 * torch.randn(z.shape, generator=torch.Generator().manual_seed(1))
    ref, ref_q = torch.log_softmax(z.double(), -1), torch.log_softmax(zq.double(), -1)
    got = log_softmax(z)
    assert got.dtype == torch.float32
    top = ref > -30  # the values that carry the mass
    assert (got.double() - ref)[top].abs().max() <= 2e-6
    kl64 = (ref_q.exp() * (ref_q - ref)).sum(-1)
    kl = (log_softmax(zq).exp() * (log_softmax(zq) - got)).sum(-1).double()
    plain = torch.log_softmax(zq, -1)
    kl_plain = (plain.exp() * (plain - torch.log_softmax(z, -1))).sum(-1).double()
    err, err_plain = (kl - kl64).abs().max(), (kl_plain - kl64).abs().max()
    assert err <= 1e-8 and err_plain > 10 * err, (err, err_plain)  # KLs here: 3e-10 to 7e-6 nats
    x = (torch.randn(6, 500, generator=torch.Generator().manual_seed(2)) * 8).requires_grad_()
    x64 = x.detach().double().requires_grad_()
    w = torch.randn(6, 500, generator=torch.Generator().manual_seed(3))
    (log_softmax(x) * w).sum().backward()
    (torch.log_softmax(x64, -1) * w.double()).sum().backward()
    torch.testing.assert_close(x.grad.double(), x64.grad, rtol=0, atol=1e-5)
    masked = x.detach().clone()
    masked[0, 3] = float("-inf")
    out = log_softmax(masked)
    assert out[0, 3] == float("-inf") and torch.isfinite(out[0, :3]).all() and torch.isfinite(out[1:]).all()


def test_target_logprob_matches_float64_with_its_gradient() -> None:
    g = torch.Generator().manual_seed(3)
    z = (torch.randn(8, 2000, generator=g) * 6).requires_grad_()
    y = torch.randint(2000, (8,), generator=g)
    got = target_logprob(z, y)
    z64 = z.detach().double().requires_grad_()
    ref = torch.log_softmax(z64, dim=-1).gather(-1, y[:, None]).squeeze(-1)
    torch.testing.assert_close(got.double(), ref.detach(), rtol=0, atol=5e-6)
    got.sum().backward()
    ref.sum().backward()
    torch.testing.assert_close(z.grad.double(), z64.grad, rtol=0, atol=1e-6)
    masked = z.detach().clone()
    masked[0, y[0]] = float("-inf")
    assert target_logprob(masked, y)[0] == float("-inf") and torch.isfinite(target_logprob(masked, y)[1:]).all()


def test_project_in_float32_ignores_autocast_and_bf16_weights() -> None:
    g = torch.Generator().manual_seed(4)
    head = torch.nn.Linear(64, 3000, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.randn(3000, 64, generator=g) * 0.5)
    hidden = torch.randn(10, 64, generator=g) * 2
    exact = F.linear(hidden.double(), head.weight.double())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not computes_in_float32(head, hidden)
        coarse, fine = project(head, hidden), project(head, hidden, float32=True)
    assert coarse.dtype == fine.dtype == torch.float32
    assert (coarse.double() - exact).abs().max() > 1e-2  # bf16-rounded logits
    torch.testing.assert_close(fine.double(), exact, rtol=0, atol=1e-4)
    bf16_head = torch.nn.Linear(64, 3000, bias=False).to(torch.bfloat16)
    assert not computes_in_float32(bf16_head, hidden)
    exact_bf16 = F.linear(hidden.double(), bf16_head.weight.double())
    torch.testing.assert_close(project(bf16_head, hidden, float32=True).double(), exact_bf16, rtol=0, atol=1e-4)
    assert computes_in_float32(head, hidden) and torch.equal(project(head, hidden, float32=True), head(hidden))


@pytest.mark.parametrize(("vocab", "k"), [(5000, 512), (4099, 100), (1000, 64), (520, 520), (4000, 1)])
def test_top_k_values_are_exactly_topks(vocab: int, k: int) -> None:
    """The CPU path (numpy's partition, in row blocks) keeps what ``topk`` keeps, ties included."""
    gen = torch.Generator().manual_seed(vocab)
    flat = torch.randn(300, vocab, generator=gen)  # more rows than one block holds
    peaked = flat * 30
    ties = torch.randint(0, 4, (300, vocab), generator=gen).float()  # most of the top k tie
    clustered = flat.clone()
    clustered[:, : 2 * k] += 50  # the top k all in a few neighbouring columns
    masked = flat.clone()
    masked[:, vocab // 3:] = float("-inf")  # a masked vocabulary: -inf rows as well as padding
    strided_rows = torch.randn(vocab, 3, generator=gen).T  # not contiguous
    for z in (flat, peaked, ties, clustered, masked, strided_rows, flat.double()):
        got = top_k_values(z, k)
        assert got.shape == (z.shape[0], k) and got.dtype == z.dtype
        assert torch.equal(got.sort(-1).values, z.topk(k, dim=-1).values.sort(-1).values)
    with_grad = flat[:2].clone().requires_grad_()  # the other path: topk itself
    assert torch.equal(top_k_values(with_grad, k).sort(-1).values, flat[:2].topk(k, dim=-1).values.sort(-1).values)


def test_target_logprob_at_per_row_temperatures_matches_float64() -> None:
    """The teacher's log q at each row's own temperature, in row blocks, against float64; the same
    value as heating the logits first (within float32 rounding)."""
    z = torch.cat([qwen_sized_rows(), torch.randn(200, QWEN_VOCAB) * 4])  # peaked, flat, many blocks
    g = torch.Generator().manual_seed(5)
    y = torch.randint(QWEN_VOCAB, (z.shape[0],), generator=g)
    y[-40:] = 7  # the peaked rows' likely token too
    y[:4] = z[:4].argmax(-1)
    tau = 1.1 + 0.4 * torch.rand(z.shape[0], generator=g)
    ref = torch.log_softmax(z.double() / tau.double()[:, None], -1).gather(-1, y[:, None]).squeeze(-1)
    got = target_logprob_at(z, y, tau)
    assert got.dtype == torch.float32 and not got.requires_grad
    assert (got.double() - ref).abs().max() <= 5e-6
    torch.testing.assert_close(got, target_logprob(z / tau[:, None], y), rtol=0, atol=5e-6)
    masked = z[:3].clone()
    masked[0, y[0]] = float("-inf")
    out = target_logprob_at(masked, y[:3], tau[:3])
    assert out[0] == float("-inf") and torch.isfinite(out[1:]).all()


def test_entropy_in_row_blocks_equals_one_pass_and_any_shape() -> None:
    """The no-grad path (row blocks) gives bitwise the values of the differentiable one, on
    inputs of any leading shape and rows spanning several blocks."""
    z = torch.randn(3, 70, 5000) * torch.linspace(0.1, 30, 70)[None, :, None]
    with torch.no_grad():
        blocked = entropy(z)
    assert blocked.shape == (3, 70)
    assert torch.equal(blocked, entropy(z.clone().requires_grad_()).detach())
    torch.testing.assert_close(blocked.double(), entropy64(z.reshape(-1, 5000)).view(3, 70), rtol=0, atol=2e-6)
    assert entropy(torch.zeros(0, 10)).shape == (0,)


def test_entropy_at_temperatures_is_entropy_of_heated_logits() -> None:
    """What the tau rule's bisection evaluates: bitwise ``entropy(logits / tau)``, per-row or one
    temperature, on a subset of rows too, with masked (-inf) logits and rows over several blocks."""
    g = torch.Generator().manual_seed(6)
    z = torch.randn(700, 512, generator=g) * torch.linspace(0.1, 30, 700)[:, None]
    z[::7, 100:] = float("-inf")
    z = z - z.amax(-1, keepdim=True)  # as the rule hands it over: largest value 0
    tau = 1.1 + 0.4 * torch.rand(700, generator=g)
    at = EntropyAtTemperatures(z)
    with torch.no_grad():
        assert torch.equal(at(tau), entropy(z / tau[:, None]))
        assert torch.equal(at(1.3), entropy(z / 1.3))
        rows = torch.tensor([3, 7, 500, 699])
        assert torch.equal(at.rows(rows)(tau[rows]), entropy(z[rows] / tau[rows, None]))
    torch.testing.assert_close(at(tau).double(), entropy64(z / tau[:, None]), rtol=0, atol=2e-6)
