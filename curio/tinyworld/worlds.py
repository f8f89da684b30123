"""The tiny worlds: one arithmetic core, two ways of writing it down.

- ``arith`` (``assets/tiny_world``): one wording per step; the only forks are which step to take
  (2.3% of response tokens). Its base model's entropy is concentrated on those few tokens, which is
  why the first claims study could not exercise the entropy-guided temperature (docs/results_tiny.md).
- ``forks`` (``assets/fork_world``): longer problems with values up to 50, and every step line has
  four wording forks (a connector, how the result is stated, how the rest is introduced, how the line
  ends), so a sizeable minority of tokens carries real entropy and most carry none, the shape measured
  in real chains of thought (Wang et al. 2025, arXiv 2506.01939: over half the tokens near zero, the
  80th percentile at 0.672 nats); a share of its pretraining rows misread operator precedence once
  (about half of them where several valid steps compete: a wrong turn at a fork), so a fork can
  decide correctness. Fewer expert demonstrations (500) leave
  the SFT model room for RL.
"""

from __future__ import annotations

from dataclasses import dataclass

from curio.tinyworld.phrasing import Phrasing
from curio.tinyworld.settings import ID, OOD, Limits, Setting


@dataclass(frozen=True)
class World:
    """What differs between the worlds; everything else (arithmetic, limits, labels) is shared.

    Attributes:
        name: the key in :data:`WORLDS`.
        folder: where its shipped build lives, under ``assets/``.
        id, ood: the in-distribution and out-of-distribution problem settings.
        phrasing: the wordings a step line may take.
        tokenizer_splits: the splits the BPE is trained on (every wording must be in them).
    """

    name: str
    folder: str
    id: Setting
    ood: Setting
    phrasing: Phrasing
    tokenizer_splits: tuple[str, ...]


WORLDS: dict[str, World] = {
    "arith": World(
        "arith",
        "tiny_world",
        ID,
        OOD,
        Phrasing(),
        # Training text only, as a real tokenizer would not have seen a benchmark. The SFT split holds
        # every word of this world (BPE learns the same vocabulary from pretraining) and is 6x faster.
        tokenizer_splits=("sft_train",),
    ),
    "forks": World(
        "forks",
        "fork_world",
        Setting(name="id", min_ops=4, max_ops=5, limits=Limits(max_value=50)),
        Setting(name="ood", min_ops=6, max_ops=8, limits=Limits(max_value=50)),
        Phrasing(
            connectors=("Then ", "So ", "Next ", "Now ", "Thus "),
            equals=("=", " is "),
            separators=(", so ", ", giving ", ", leaving ", ", hence "),
            ends=("\n", ".\n"),
        ),
        # The expert writes one wording of each: the others only occur in pretraining.
        tokenizer_splits=("sft_train", "pretrain"),
    ),
}
