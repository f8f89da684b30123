"""Linear warmup then cosine decay, as in the CurioSFT authors' run (spec section 8)."""

from __future__ import annotations

import math
from functools import partial

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from curio.errors import ConfigError


def warmup_cosine_factor(
    step: int,
    total_steps: int,
    warmup_steps: int,
    warmup_start_factor: float,
    min_lr_ratio: float,
    horizon_multiplier: float,
) -> float:
    """The learning-rate multiplier at optimizer step ``step`` (0-indexed).

    Warmup rises linearly from ``warmup_start_factor`` to 1 over ``warmup_steps``. The cosine then
    decays toward ``min_lr_ratio`` over a horizon of ``horizon_multiplier * total_steps`` steps:
    the authors' code stretches it 4x, so their lr ends near 0.88x peak instead of at the floor.
    """
    if step < warmup_steps:
        return warmup_start_factor + (1.0 - warmup_start_factor) * step / warmup_steps
    horizon = max(horizon_multiplier * total_steps - warmup_steps, 1.0)
    progress = min((step - warmup_steps) / horizon, 1.0)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine_schedule(
    optimizer: Optimizer,
    total_steps: int,
    warmup_steps: int | float = 60,
    warmup_start_factor: float = 1e-4,
    min_lr_ratio: float = 1e-4,
    horizon_multiplier: float = 4.0,
) -> LambdaLR:
    """``warmup_steps`` is a step count, or a fraction of ``total_steps`` when below 1."""
    if warmup_steps < 0 or not 0 <= warmup_start_factor <= 1 or not 0 <= min_lr_ratio <= 1:
        raise ConfigError(
            "sched: warmup_steps must be >= 0 and warmup_start_factor, min_lr_ratio in [0, 1] "
            f"(got {warmup_steps}, {warmup_start_factor}, {min_lr_ratio})"
        )
    if horizon_multiplier < 1:
        raise ConfigError(f"sched.horizon_multiplier={horizon_multiplier}: must be >= 1")
    warmup = round(warmup_steps * total_steps) if 0 < warmup_steps < 1 else int(warmup_steps)
    factor = partial(
        warmup_cosine_factor,
        total_steps=total_steps,
        warmup_steps=warmup,
        warmup_start_factor=warmup_start_factor,
        min_lr_ratio=min_lr_ratio,
        horizon_multiplier=horizon_multiplier,
    )
    return LambdaLR(optimizer, factor)
