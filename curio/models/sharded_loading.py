"""Big models under FSDP2: build on the meta device, then give each rank only its own shards.

Otherwise every rank builds the whole model in float32 on its CPU before sharding: 8 ranks of a 7B
model hold 8 x 28 GB of host memory at start (twice that with a teacher copy), and a 32B model
cannot start at all. Under
``trainer=fsdp``, ``load_causal_lm`` instead builds the model's parameters on the meta device (no
memory; buffers such as rotary frequencies are computed for real, they are small) and remembers
its checkpoint folder. ``curio.parallel.apply_fsdp2`` shards the student and the teacher's copy
on the meta device and then calls :func:`load_local_shards` on each: every rank allocates its
local shards and reads from the safetensors files just the rows it holds (a memory-mapped slice
per parameter), so its host memory follows the shard, not the model. A LoRA model's adapters,
which no checkpoint holds, get their starting values from :func:`curio.lora.adapter_start`, and
its adapted layers' weights (``q_proj.base_layer.weight``) are read under the plain model's names.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from curio.lora import base_name

log = logging.getLogger(__name__)

#: Attribute set on a model built on the meta device: the folder its weights are read from.
CHECKPOINT_ATTR = "curio_checkpoint_folder"


def is_on_meta(model: nn.Module) -> bool:
    return any(p.is_meta for p in model.parameters())


def checkpoint_folder(name_or_path: str, revision: str | None = None) -> Path:
    """The local folder of a checkpoint: the path itself, or the hub cache's snapshot (which an
    offline machine must already hold)."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(name_or_path, revision=revision, allow_patterns=["*.json", "*.safetensors"]))


class SafetensorsReader:
    """Reads rows of named tensors from a checkpoint folder's ``*.safetensors`` files (one file or
    an index of shards), touching only the rows asked for. A context manager: each file is opened
    (memory-mapped) once, on first use, and closed on exit."""

    def __init__(self, folder: Path):
        from safetensors import safe_open

        self._open = safe_open
        index = folder / "model.safetensors.index.json"
        if index.is_file():
            weight_map = json.loads(index.read_text())["weight_map"]
            self.files = {name: folder / file for name, file in weight_map.items()}
        else:
            single = folder / "model.safetensors"
            if not single.is_file():
                raise FileNotFoundError(f"{folder}: no model.safetensors or model.safetensors.index.json to load "
                                        "shard by shard (trainer=fsdp); convert the checkpoint to safetensors")
            with safe_open(str(single), framework="pt") as f:
                self.files = {name: single for name in f.keys()}
        self.folder = folder
        self._handles: dict[Path, Any] = {}  # file -> its open safe_open handle
        self._stack = ExitStack()

    def __enter__(self) -> SafetensorsReader:
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()
        self._handles.clear()

    def __contains__(self, name: str) -> bool:
        return name in self.files

    def rows(self, name: str, start: int, stop: int) -> Tensor:
        """``tensor[start:stop]`` (dimension 0) of ``name``; a 0-d tensor whole."""
        file = self.files[name]
        if file not in self._handles:
            self._handles[file] = self._stack.enter_context(self._open(str(file), framework="pt"))
        part = self._handles[file].get_slice(name)
        if len(part.get_shape()) == 0:
            return self._handles[file].get_tensor(name)
        return part[start:stop]


def load_local_shards(model: nn.Module, device: torch.device,
                      initial: Callable[[str, torch.Size], Tensor | None] | None = None) -> None:
    """Allocate ``model``'s parameters (sharded by ``fully_shard`` while on the meta device) on
    ``device`` and fill each rank's shard from the checkpoint the model was built from.

    Buffers keep the values they were built with (they never were on the meta device), unless the
    checkpoint holds them. ``initial(name, shape)`` gives the whole starting value of a parameter
    the checkpoint does not hold (LoRA adapters: :func:`curio.lora.adapter_start`), or None.

    Raises:
        ValueError: a parameter neither the checkpoint nor ``initial`` gives.
    """
    folder = Path(getattr(model, CHECKPOINT_ATTR))
    with SafetensorsReader(folder) as reader:
        _fill_local_shards(model, device, reader, initial)
    log.info("loaded this rank's shards of %s from %s", type(model).__name__, folder)


def _fill_local_shards(model: nn.Module, device: torch.device, reader: SafetensorsReader,
                       initial: Callable[[str, torch.Size], Tensor | None] | None) -> None:
    from torch.distributed.tensor import DTensor
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

    stored = {}  # parameter -> its name in the checkpoint
    started = {}  # parameters the checkpoint does not hold -> their whole starting values
    for name, param in model.named_parameters():
        held = next((key for key in (name, base_name(name)) if key in reader), None)
        if held is not None:
            stored[name] = held
        elif initial is not None and (value := initial(name, param.shape)) is not None:
            started[name] = value
    missing = [name for name, _ in model.named_parameters() if name not in stored and name not in started]
    if missing:
        raise ValueError(f"{reader.folder} holds no {missing[:3]} ({len(missing)} parameters missing): cannot load "
                         f"{type(model).__name__} shard by shard")

    def rows(name: str, start: int, stop: int) -> Tensor:
        return started[name][start:stop] if name in started else reader.rows(stored[name], start, stop)

    buffers = {name: b for name, b in model.named_buffers()}
    model.to_empty(device=device)  # parameters: this rank's shards, not yet filled
    with torch.no_grad():
        for name, new in model.named_buffers():
            new.copy_(reader.rows(name, 0, new.shape[0] if new.dim() else 0) if name in reader else buffers[name])
        for name, param in model.named_parameters():
            if isinstance(param, DTensor):
                local = param.to_local()
                shape, offset = compute_local_shape_and_global_offset(param.shape, param.device_mesh, param.placements)
                if local.numel() == 0:
                    continue
                start = offset[0] if offset else 0
                local.copy_(rows(name, start, start + shape[0]).view(local.shape))
            else:
                param.copy_(rows(name, 0, param.shape[0] if param.dim() else 0))
