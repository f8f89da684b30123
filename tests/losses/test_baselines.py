"""Entropy-regularised SFT and DFT specifics (spec section 7)."""

from __future__ import annotations

import math

import pytest
import torch

from curio.losses import DFTLoss, EntropyRegularizedLoss
from tests.losses.cases import make_case, run_module


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
