"""Every loss against its float64 reference (spec sections 6-7), plain and chunked, N = 0, 1, many."""

from __future__ import annotations

import pytest
import torch

from curio.losses import (
    AnchoredLoss,
    CrossEntropyLoss,
    CurioLoss,
    DFTLoss,
    EAFTLoss,
    EntropyRegularizedLoss,
    GEMLoss,
    PSFTLoss,
    SEDLoss,
)
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
    "gem": (lambda c: GEMLoss(chunk_size=c), "gem", {"beta": 0.7, "weighting": "logsigmoid"}),
    "gem_linear": (lambda c: GEMLoss(beta=0.5, weighting="linear", chunk_size=c), "gem",
                   {"beta": 0.5, "weighting": "linear"}),
    "psft": (lambda c: PSFTLoss(chunk_size=c), "psft", {"clip": (0.2, 0.28)}),
    "psft_narrow": (lambda c: PSFTLoss(0.05, 0.05, chunk_size=c), "psft", {"clip": (0.05, 0.05)}),
    "asft": (lambda c: AnchoredLoss(chunk_size=c), "anchored", {"fit": "dft", "lam": 0.1}),
    "sft_kl": (lambda c: AnchoredLoss("ce", kl_coef=0.5, chunk_size=c), "anchored", {"fit": "ce", "lam": 0.5}),
    "eaft": (lambda c: EAFTLoss(chunk_size=c), "eaft", {"alpha": 1.0, "top_k": 20}),
    "eaft_sharp": (lambda c: EAFTLoss(alpha=2.0, top_k=5, chunk_size=c), "eaft", {"alpha": 2.0, "top_k": 5}),
    "sed": (lambda c: SEDLoss(chunk_size=c), "sed", {"lam": 1.0, "top_k": 2, "threshold": 0.7}),
    "sed_k3": (lambda c: SEDLoss(lam=0.2, top_k=3, threshold=0.9, chunk_size=c), "sed",
               {"lam": 0.2, "top_k": 3, "threshold": 0.9}),
}


# Losses whose value on these cases is carried by small differences of the logits (ASFT's KL on a
# token whose DFT term is ~1e-11; EAFT's weight from a peaked top-k entropy): the float32
# projection's rounding of the logits (~1e-6 here) moves them by up to ~6e-6 against a float64
# projection. Against the float64 formula on the module's own float32 logits every loss is within
# 1e-6 (below), so this is the projection's floor, not the loss's arithmetic.
PROJECTION_FLOOR = {"asft": 1e-5, "eaft": 1e-5, "eaft_sharp": 1e-5}


@pytest.mark.parametrize("n_tokens", [0, 1, 37])
@pytest.mark.parametrize("name", list(LOSSES))
def test_matches_float64_reference(name: str, n_tokens: int) -> None:
    factory, kind, kw = LOSSES[name]
    case = make_case(n_tokens)
    ref_loss, ref_gh, ref_gw = run_reference(kind, case, **kw)
    same_logits = run_reference(kind, case, float32_logits=True, **kw)[0]
    for chunk in (None, 8):  # 8 does not divide 37
        loss, _, gh, gw = run_module(factory(chunk), case)
        if n_tokens == 0:
            assert loss.item() == 0.0
            assert torch.count_nonzero(gh) == 0 and torch.count_nonzero(gw) == 0
            continue
        rtol = PROJECTION_FLOOR.get(name, 1e-6)
        assert abs(loss.item() - ref_loss.item()) <= rtol * abs(ref_loss.item()), (chunk, loss, ref_loss)
        assert abs(loss.item() - same_logits.item()) <= 1e-6 * abs(same_logits.item()), (chunk, loss, same_logits)
        assert_close_rel(gh, ref_gh, 1e-5)
        assert_close_rel(gw, ref_gw, 1e-5)


@pytest.mark.parametrize("name", list(LOSSES))
def test_chunked_equals_plain(name: str) -> None:
    factory, _, _ = LOSSES[name]
    case = make_case(37, seed=1)
    loss_p, metrics_p, gh_p, gw_p = run_module(factory(None), case)
    loss_c, metrics_c, gh_c, gw_c = run_module(factory(8), case)
    torch.testing.assert_close(loss_c, loss_p, rtol=1e-6, atol=0)
    # Chunks change the order of float32 sums over tokens: the rounding scales with the gradient's
    # magnitude, not each element's (elementwise rtol failed near-zero weights on another CPU).
    assert_close_rel(gh_c, gh_p, 1e-5)
    assert_close_rel(gw_c, gw_p, 1e-5)
    assert metrics_c.keys() == metrics_p.keys()
    for key in metrics_p:
        assert metrics_c[key].shape == (37,)
        torch.testing.assert_close(metrics_c[key], metrics_p[key], rtol=1e-5, atol=1e-6)
