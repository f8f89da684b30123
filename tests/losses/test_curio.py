"""CurioSFT specifics (spec section 6): the gradient identity, the metrics, the teacher reduction."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from curio.losses import CrossEntropyLoss, CurioLoss, LossInputs, TeacherChunk
from curio.teacher.base import ProjectedLogits
from curio.teacher.live import StudentLogits
from curio.temperature import EntropyGuidedTemperature, FixedTemperature
from tests.losses.cases import NORMALIZER, make_case, run_module
from tests.losses.loss_reference import log_softmax64


@pytest.mark.parametrize("lam", [1.0, 0.3])
def test_gradient_identity_on_logits(lam: float) -> None:
    """grad loss_t = -w_t grad log p_t with w_t = 1 - lam (log p_t - log q_t), w detached."""
    n, vocab = 11, 50
    logits = (torch.randn(n, vocab, dtype=torch.float64) * 3).requires_grad_()
    targets = torch.randint(vocab, (n,))
    logp = torch.stack([log_softmax64(logits[t])[targets[t]] for t in range(n)])
    logq = logp.detach() + 2 * torch.randn(n, dtype=torch.float64)  # the student on either side
    loss = CurioLoss(FixedTemperature(), lam=lam)
    token_loss, metrics = loss.token_losses(logits, targets, {"logq": logq})
    (grad,) = torch.autograd.grad(token_loss.sum(), logits)

    w = (1 - lam * (logp - logq)).detach()
    (expected,) = torch.autograd.grad(-(w * logp).sum(), logits)
    torch.testing.assert_close(grad, expected, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(metrics["w"], w, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(metrics["k2"], 0.5 * (logp - logq).detach() ** 2, rtol=1e-12, atol=1e-14)
    assert (w < 1).any() and (w > 1).any()


def test_gradient_identity_through_the_chunked_path() -> None:
    """The chunked module's gradients equal those of a CE weighted by its own ``w`` metric."""
    case = make_case(37)
    _, metrics, gh, gw = run_module(CurioLoss(EntropyGuidedTemperature(), chunk_size=8), case)
    h = case.hidden.detach().double().requires_grad_()
    w = case.head.weight.detach().double().requires_grad_()
    logp = torch.stack([log_softmax64(h[t] @ w.T)[case.targets[t]] for t in range(h.shape[0])])
    (-(metrics["w"].double() * logp).sum() / NORMALIZER).backward()
    torch.testing.assert_close(gh.double(), h.grad, rtol=0, atol=1e-5 * h.grad.abs().max().item())
    torch.testing.assert_close(gw.double(), w.grad, rtol=0, atol=1e-5 * w.grad.abs().max().item())


def test_teacher_stats() -> None:
    """log q over the full vocabulary at the chosen tau; teacher entropy at T = 1; flags as 0/1."""
    z = torch.randn(9, 700) * torch.tensor([0.01, 1, 2, 4, 8, 12, 20, 30, 50])[:, None]
    y = torch.randint(700, (9,))
    stats = CurioLoss(EntropyGuidedTemperature()).teacher_stats(TeacherChunk(z), y)
    for t in range(9):
        zt = z[t].double()
        logq = log_softmax64(zt / stats["tau"][t].item())[y[t]]
        assert stats["logq"][t].item() == pytest.approx(logq.item(), rel=1e-6)
        logp = log_softmax64(zt)
        assert stats["teacher_entropy"][t].item() == pytest.approx(-(logp.exp() * logp).sum().item(), abs=1e-5)
    for flag in ("tau_gated", "tau_at_min", "tau_at_max"):
        assert stats[flag].dtype == torch.float32 and set(stats[flag].tolist()) <= {0.0, 1.0}
    assert (stats["tau_gated"] + stats["tau_at_min"] + stats["tau_at_max"]).max() <= 1


def test_metrics_and_live_teacher() -> None:
    """With the live teacher (teacher = student, detached) log q is the student heated by tau."""
    case = make_case(20)
    loss = CurioLoss(FixedTemperature(tau=1.0), chunk_size=8)
    teacher = ProjectedLogits(case.hidden.detach(), case.head, fp32=True)
    out = loss(LossInputs(case.hidden, case.targets, case.head, teacher))
    m = out.token_metrics
    teacher_keys = {"logq", "tau", "teacher_entropy", "tau_gated", "tau_at_min", "tau_at_max"}
    assert set(m) == {"ce", "k2", "w", "entropy"} | teacher_keys
    assert all(v.shape == (20,) and not v.requires_grad for v in m.values())
    # tau = 1 and teacher = student: q = p, so k2 = 0, w = 1, loss = CE.
    torch.testing.assert_close(m["logq"], -m["ce"], rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(m["w"], torch.ones(20), rtol=0, atol=1e-4)
    torch.testing.assert_close(out.loss_sum, m["ce"].sum(), rtol=1e-6, atol=0)
    torch.testing.assert_close(m["teacher_entropy"], m["entropy"], rtol=1e-5, atol=1e-5)


def test_needs_teacher_and_validation() -> None:
    assert CurioLoss.needs_teacher
    with pytest.raises(ValueError, match="loss.lam must be >= 0"):
        CurioLoss(FixedTemperature(), lam=-1.0)


@pytest.mark.parametrize("chunk_size", [None, 8, 64])
def test_live_teacher_equals_an_explicit_detached_copy(chunk_size) -> None:
    """The live teacher (statistics from the student's own chunk logits and entropy) gives the same
    loss, gradients and metrics as a teacher projecting ``hidden.detach()`` with the student's head."""
    case = make_case(37)
    loss = CurioLoss(EntropyGuidedTemperature(top_k=16), chunk_size=chunk_size)
    results = []
    for live in (True, False):
        hidden = case.hidden.detach().clone().requires_grad_(True)
        case.head.zero_grad()
        teacher = (StudentLogits if live else ProjectedLogits)(hidden.detach(), case.head, True)
        out = loss(LossInputs(hidden, case.targets, case.head, teacher))
        out.loss_sum.backward()
        results.append((out, hidden.grad.clone(), case.head.weight.grad.clone()))
    (fast, fast_h, fast_w), (slow, slow_h, slow_w) = results
    torch.testing.assert_close(fast.loss_sum, slow.loss_sum, rtol=0, atol=0)
    torch.testing.assert_close(fast_h, slow_h, rtol=0, atol=0)
    torch.testing.assert_close(fast_w, slow_w, rtol=0, atol=0)
    assert fast.token_metrics.keys() == slow.token_metrics.keys()
    for name in fast.token_metrics:
        torch.testing.assert_close(fast.token_metrics[name], slow.token_metrics[name], rtol=0, atol=0)


class _CountMatmuls(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in (torch.ops.aten.mm.default, torch.ops.aten.addmm.default):
            self.count += 1
        return func(*args, **(kwargs or {}))


def test_live_teacher_costs_no_extra_output_projection() -> None:
    """Per chunk, chunked CE runs 4 head matmuls (forward, checkpoint recompute, 2 in backward);
    CurioSFT with the live teacher runs the same 4, not a fifth for the teacher."""
    case = make_case(24)

    def matmuls(loss_fn, live):
        hidden = case.hidden.detach().clone().requires_grad_(True)
        teacher = StudentLogits(hidden.detach(), case.head, fp32=True) if live else None
        with _CountMatmuls() as counter:
            loss_fn(LossInputs(hidden, case.targets, case.head, teacher)).loss_sum.backward()
        return counter.count

    ce = matmuls(CrossEntropyLoss(chunk_size=8), live=False)
    assert ce == 3 * 4
    assert matmuls(CurioLoss(EntropyGuidedTemperature(top_k=16), chunk_size=8), live=True) == ce
