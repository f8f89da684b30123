"""Names of torch dtypes in configs (``float32``, ``bfloat16``, ...): the one table and its parser."""

from __future__ import annotations

import torch

from curio.errors import ConfigError

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "float64": torch.float64,
}


def parse_dtype(name: str | torch.dtype | None, key: str) -> torch.dtype | None:
    """``"bfloat16" -> torch.bfloat16``; None stays None (keep the source's dtype).

    Raises:
        ConfigError: naming ``key`` and the allowed names, for anything else.
    """
    if name is None or isinstance(name, torch.dtype):
        return name
    if name not in DTYPES:
        raise ConfigError(f"{key}={name!r}: choose null or one of {', '.join(DTYPES)}")
    return DTYPES[name]
