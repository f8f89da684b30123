"""Temperature rules (spec section 5) against a float64 reference."""

from __future__ import annotations

import pytest
import torch

from curio.temperature import EntropyGuidedTemperature, FixedTemperature, TemperatureResult
from tests.losses.loss_reference import entropy64, tau64

TAU_MIN, TAU_MAX = 1.1, 1.5
# Bisection leaves tau within (tau_max - tau_min) / 2**21 of the root; on top, float32 entropy is
# exact to ~1e-6 nats at H ~ 5 and dH/dtau >= ~0.3 on these rows, so the root itself moves ~2e-6.
TAU_TOL = (TAU_MAX - TAU_MIN) / 2**20 + 2e-6


def mixed_logits(n_per_scale: int = 4, vocab: int = 600) -> torch.Tensor:
    """Rows from flat (x0.01) to peaked (x30): every outcome of the rule occurs."""
    scales = torch.tensor([0.01, 0.3, 1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 30.0])
    return torch.randn(len(scales), n_per_scale, vocab).mul(scales[:, None, None]).reshape(-1, vocab)


def outcome(res: TemperatureResult) -> list[str]:
    return [
        "gated" if g else "at_min" if lo else "at_max" if hi else "interior"
        for g, lo, hi in zip(res.gated.tolist(), res.at_min.tolist(), res.at_max.tolist())
    ]


def test_delta_matches_spec_reference_values() -> None:
    rule = EntropyGuidedTemperature()
    h = torch.tensor([0.0, 0.5, 1.0, 1.2, 2.0, 3.0])
    expected = torch.tensor([0.042, 0.099, 0.201, 0.250, 0.416, 0.487])
    torch.testing.assert_close(rule.delta(h), expected, rtol=0, atol=5e-4)


# 5000: top-K found in two stages (curio.ops.top_k_values); 600: in one
# (too few groups to skip any); 100 < top_k: K is clipped to the vocabulary.
@pytest.mark.parametrize("vocab", [5000, 600, 100])
def test_entropy_guided_matches_reference(vocab: int) -> None:
    logits = mixed_logits(vocab=vocab)
    res = EntropyGuidedTemperature()(logits)
    assert res.tau.dtype == torch.float32 and res.tau.shape == (logits.shape[0],)
    ref = [tau64(row) for row in logits]
    assert outcome(res) == [why for _, why in ref]
    if vocab == 600:
        assert {why for _, why in ref} == {"gated", "at_min", "at_max", "interior"}
    for row, tau, (ref_tau, why) in zip(logits, res.tau.tolist(), ref):
        assert abs(tau - ref_tau) <= TAU_TOL, (why, tau, ref_tau)
        if why == "interior":  # and tau solves H_K(tau) = target
            top = row.double().sort(descending=True).values[:512]
            h0 = entropy64(top)
            target = h0 + 0.5 * torch.sigmoid(2.0 * (h0 - 1.2))
            assert abs(entropy64(top / tau) - target) <= 3e-6
        else:
            assert tau == pytest.approx(ref_tau, abs=1e-7)


def test_entropy_guided_is_float32_whatever_the_input() -> None:
    logits = mixed_logits().to(torch.bfloat16)
    rule = EntropyGuidedTemperature()
    res = rule(logits)
    assert res.tau.dtype == torch.float32
    torch.testing.assert_close(res.tau, rule(logits.float()).tau, rtol=0, atol=0)


def test_given_entropy_is_used_for_the_gate() -> None:
    logits = mixed_logits()
    rule = EntropyGuidedTemperature()
    res = rule(logits, entropy=torch.zeros(logits.shape[0]))
    assert res.gated.all() and (res.tau == torch.tensor(TAU_MIN)).all()
    assert not rule.__class__(gate_entropy=None)(logits).gated.any()


def test_custom_constants_are_used() -> None:
    rule = EntropyGuidedTemperature(tau_min=1.0, tau_max=2.0, top_k=64, iterations=30)
    logits = mixed_logits()
    ref = [tau64(row, top_k=64, tau_min=1.0, tau_max=2.0) for row in logits]
    for tau, (ref_tau, _) in zip(rule(logits).tau.tolist(), ref):
        assert abs(tau - ref_tau) <= 1.0 / 2**30 + 2e-6


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tau_min": 1.6}, r"temp.tau_min \(1.6\) must be <= temp.tau_max \(1.5\)"),
        ({"tau_min": 0.0}, "temp.tau_min must be > 0"),
        ({"top_k": 0}, "temp.top_k must be >= 1"),
        ({"delta_max": -0.1}, "temp.delta_max must be >= 0"),
        ({"iterations": -1}, "temp.iterations must be >= 0"),
        ({"gate_entropy": -1.0}, "temp.gate_entropy must be >= 0"),
    ],
)
def test_entropy_guided_validates(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EntropyGuidedTemperature(**kwargs)


def test_fixed() -> None:
    logits = mixed_logits()
    res = FixedTemperature(tau=1.25)(logits.to(torch.bfloat16))
    assert res.tau.dtype == torch.float32
    assert (res.tau == 1.25).all()
    assert not (res.gated.any() or res.at_min.any() or res.at_max.any())
    with pytest.raises(ValueError, match="temp.tau must be > 0"):
        FixedTemperature(tau=0.0)
