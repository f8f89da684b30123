"""Group-relative advantages (GRPO): each sample's reward against the other samples of its prompt."""

from __future__ import annotations

import torch
from torch import Tensor


def group_advantages(rewards: Tensor, scale_by_std: bool = True, eps: float = 1e-6) -> Tensor:
    """``[P, G] -> [P, G]``: ``(r - mean) / (std + eps)`` within each group of G samples.

    Always centred. ``scale_by_std`` divides by the group's (unbiased) standard deviation as GRPO
    does; off, it is Dr.GRPO's plain centring. A group whose samples all got the same reward gets
    advantage 0 (never NaN), and a group of one sample gets its reward as the advantage (mean 0,
    std 1: the authors' verl convention).

    Args:
        rewards: ``[P, G]`` rewards of G samples for each of P prompts (float).
        scale_by_std: divide by the group's standard deviation (+ ``eps``).
        eps: added to the standard deviation.
    """
    rewards = rewards.to(torch.float32)
    if rewards.shape[1] == 1:
        return rewards.clone()
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    if not scale_by_std:
        return centred
    return centred / (rewards.std(dim=1, keepdim=True) + eps)
