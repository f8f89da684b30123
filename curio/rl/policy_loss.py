"""The RL policy objectives, per response token, on the chunked loss contract (``TokenLoss``).

Every probability here is the sampling distribution's, ``softmax(logits / T)`` at the rollout's
temperature T (as TRL and verl score it): the ratio then compares the policy with the one that
drew the samples. Per token t of a sample with advantage A, log-probability ``logp`` under the
policy being trained,
``old`` under the policy that sampled the rollout (the trainer's, recomputed), and
``ratio = exp(logp - old)``:

- ``ppo_clip`` (GRPO, DAPO): ``-min(ratio * A, clip(ratio, 1 - eps_low, 1 + eps_high) * A)``;
- ``authors`` (the CurioSFT authors' verl recipe): ``min(-A * logp, -A * clip(ratio, 1 - eps_low,
  1 + eps_high))``: a hard-clipped ratio objective for A > 0 (no gradient outside the range) and
  an unclipped ``|A| * logp`` term for A < 0;

plus ``kl_coef * k3`` with ``k3 = exp(ref - logp) - (ref - logp) - 1`` against a reference model
(the frozen start model, handed to the loss as its teacher), minus ``entropy_coef * H_t``. Each
token's loss is multiplied by its aggregation weight (``curio/rl/weights.py``), so the summed loss
is the step's loss whatever the micro-batching.
"""

from __future__ import annotations

import torch
from torch import Tensor

from curio.losses.base import TeacherChunk, TokenLoss
from curio.ops import at_temperature, entropy, target_logprob

POLICY_LOSSES = ("ppo_clip", "authors")


class PolicyLoss(TokenLoss):
    """Args:
    kind: ``ppo_clip`` or ``authors`` (see the module docstring).
    clip_low, clip_high: eps_low and eps_high of the ratio's range [1 - eps_low, 1 + eps_high].
    kl_coef: weight of the k3 KL term to the reference (0: the KL is logged, not optimised).
    entropy_coef: weight of the entropy bonus (0: off; the entropy is logged anyway).
    chunk_size: see :class:`~curio.losses.base.TokenLoss`.
    temperature: the rollout's sampling temperature (> 0), set from ``rl.sampling.temperature``.

    Per-token inputs (``LossInputs.token_inputs``): ``advantage``, ``weight`` and ``old_logprob``
    (left out when the policy is the one that sampled: the ratio is then exactly 1).
    Metrics: ``logprob``, ``ratio``, ``clip_low`` / ``clip_high`` (0/1: the clip cut this token's
    gradient, its ratio below / above the range), ``kl`` (with a reference), ``entropy``.
    """

    def __init__(self, kind: str = "ppo_clip", clip_low: float = 0.2, clip_high: float = 0.2,
                 kl_coef: float = 0.0, entropy_coef: float = 0.0, chunk_size: int | None = 1024,
                 temperature: float = 1.0):
        super().__init__(chunk_size=chunk_size)
        if not temperature > 0:
            raise ValueError(f"the policy's temperature must be > 0, got {temperature}")
        if kind not in POLICY_LOSSES:
            raise ValueError(f"rl.loss.kind must be one of {list(POLICY_LOSSES)}, got {kind!r}")
        if not 0 <= clip_low < 1 or clip_high < 0:
            raise ValueError(f"rl.loss.clip_low must be in [0, 1) and clip_high >= 0, got {clip_low}, {clip_high}")
        if kl_coef < 0 or entropy_coef < 0:
            raise ValueError(f"rl.loss.kl_coef and entropy_coef must be >= 0, got {kl_coef}, {entropy_coef}")
        self.kind, self.clip_low, self.clip_high = kind, clip_low, clip_high
        self.kl_coef, self.entropy_coef = kl_coef, entropy_coef
        self.temperature = temperature

    def teacher_stats(self, teacher: TeacherChunk, targets: Tensor) -> dict[str, Tensor]:
        return {"ref_logprob": target_logprob(at_temperature(teacher.logits, self.temperature), targets)}

    def token_losses(
        self, logits: Tensor, targets: Tensor, given: dict[str, Tensor]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        logits = at_temperature(logits, self.temperature)
        logp = target_logprob(logits, targets)
        advantage = given["advantage"]
        # No old log-probabilities: the policy has not moved since it sampled (the first optimizer
        # step of a rollout step), so they are these, and the ratio is exactly 1.
        old = given["old_logprob"] if "old_logprob" in given else logp.detach()
        ratio = torch.exp(logp - old)
        clipped = ratio.clamp(1 - self.clip_low, 1 + self.clip_high)
        if self.kind == "ppo_clip":
            plain, cut = -advantage * ratio, -advantage * clipped
            loss = torch.maximum(plain, cut)
            chose_clip = cut > plain
        else:
            plain, cut = -advantage * logp, -advantage * clipped
            loss = torch.minimum(plain, cut)
            chose_clip = cut < plain
        cut_here = (chose_clip & (ratio != clipped)).detach()
        metrics = {
            "logprob": logp,
            "ratio": ratio,
            "clip_low": (cut_here & (ratio < 1 - self.clip_low)).float(),
            "clip_high": (cut_here & (ratio > 1 + self.clip_high)).float(),
        }
        if "ref_logprob" in given:
            diff = given["ref_logprob"] - logp
            kl = torch.exp(diff) - diff - 1
            metrics["kl"] = kl
            if self.kl_coef:
                loss = loss + self.kl_coef * kl
        if self.entropy_coef:
            ent = entropy(logits)
            loss = loss - self.entropy_coef * ent
            metrics["entropy"] = ent
        elif self.temperature != 1:  # the sampling distribution's (at T = 1 the base class has it)
            with torch.no_grad():
                metrics["entropy"] = entropy(logits)
        return given["weight"] * loss, metrics

