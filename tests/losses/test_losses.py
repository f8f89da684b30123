"""Every loss against its float64 reference (spec sections 6-7), plain and chunked, N = 0, 1, many."""

from __future__ import annotations

import pytest
import torch

from curio.losses import CrossEntropyLoss, CurioLoss, DFTLoss, EntropyRegularizedLoss
from curio.temperature import EntropyGuidedTemperature, FixedTemperature
from tests.losses.cases import assert_close_rel, make_case, run_module, run_reference

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
