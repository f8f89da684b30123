"""Random states saved so that a resumed run draws what an uninterrupted one would.

Two savers share one reading of torch's generators: a training checkpoint keeps the states as
tensors (``torch.save`` pickles them) with Python's; an evaluation's finished batches keep torch's
as JSON text (:mod:`curio.evaluation.partial`), for the devices its sampling forked.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor


def _torch_states(devices: Sequence[torch.device | int]) -> tuple[Tensor, list[Tensor]]:
    return torch.get_rng_state(), [torch.cuda.get_rng_state(d) for d in devices]


def _set_torch_states(cpu: Tensor, cuda: Sequence[Tensor], devices: Sequence[torch.device | int]) -> None:
    torch.set_rng_state(cpu)
    for device, state in zip(devices, cuda, strict=True):
        torch.cuda.set_rng_state(state, device)


def rng_state() -> dict[str, Any]:
    """torch's, CUDA's (every device) and Python's random states: a checkpoint's."""
    cpu, cuda = _torch_states(range(torch.cuda.device_count()) if torch.cuda.is_available() else [])
    return {"torch": cpu, "cuda": cuda, "python": random.getstate()}


def restore_rng(state: dict[str, Any]) -> None:
    """Put back what :func:`rng_state` saved (its CUDA states only where CUDA is)."""
    cuda = state["cuda"] if torch.cuda.is_available() else []
    _set_torch_states(state["torch"], cuda, range(len(cuda)))
    random.setstate(state["python"])


def torch_rng_json(devices: Sequence[torch.device]) -> dict[str, Any]:
    """torch's CPU random state and that of each CUDA device in ``devices``, as JSON-ready text."""
    cpu, cuda = _torch_states(devices)
    text = [base64.b64encode(s.numpy().tobytes()).decode("ascii") for s in [cpu, *cuda]]
    return {"cpu": text[0], "cuda": text[1:]}


def restore_torch_rng_json(state: dict[str, Any], devices: Sequence[torch.device]) -> None:
    """Put back a :func:`torch_rng_json` (its CUDA states onto ``devices``, in order)."""
    cpu, *cuda = (torch.frombuffer(bytearray(base64.b64decode(t)), dtype=torch.uint8)
                  for t in [state["cpu"], *state["cuda"]])
    _set_torch_states(cpu, cuda, devices)
