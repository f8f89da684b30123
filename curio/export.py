"""Write a Hugging Face checkpoint (model, tokenizer, chat template) safely."""

from __future__ import annotations

import shutil
from pathlib import Path

from torch import Tensor, nn
from transformers import GenerationConfig, PreTrainedModel

from curio.atomic_write import staging_path
from curio.dtypes import parse_dtype


def is_sharded(model: nn.Module) -> bool:
    """Whether ``model`` was sharded with FSDP2 (``fully_shard``): its parameters are DTensors."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def full_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """The whole, unsharded state dict of an FSDP2 model, on the CPU of rank 0.

    A collective: every rank must call it. Rank 0 gets the full tensors (gathered one at a
    time, offloaded to CPU as they arrive); the other ranks get an empty dict.
    """
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if state:
        # Tied parameters (e.g. embeddings and output layer) come back as separate copies; make
        # them one tensor again so save_pretrained stores them once, as for an unsharded model.
        first: dict[int, str] = {}
        for name, param in model.named_parameters(remove_duplicate=False):
            if id(param) in first and name in state and first[id(param)] in state:
                state[name] = state[first[id(param)]]
            first.setdefault(id(param), name)
    return state


def export_hf(
    model: PreTrainedModel,
    tokenizer,
    out_dir: str | Path,
    dtype: str | None = None,
    state_dict: dict[str, Tensor] | None = None,
) -> Path:
    """Save ``model`` and ``tokenizer`` to ``out_dir`` so ``from_pretrained`` (and vLLM) load it.

    Written to a temporary sibling first, then swapped in with renames: a crash mid-write leaves
    the previous export intact.

    Args:
        model: the model (its config, generation settings and, unless ``state_dict`` is given,
            its weights). A sharded (FSDP2) model needs ``state_dict``.
        tokenizer: saved alongside (with its chat template).
        out_dir: the export folder.
        dtype: cast floating weights to this dtype (e.g. ``bfloat16``); None keeps them.
        state_dict: the weights to write, e.g. :func:`full_state_dict` of a sharded model.
    """
    out_dir = Path(out_dir)
    tmp = staging_path(out_dir)
    shutil.rmtree(tmp, ignore_errors=True)
    if state_dict is None and is_sharded(model):
        raise ValueError("export_hf of a sharded (FSDP2) model needs state_dict=full_state_dict(model)")
    state = state_dict
    if dtype is not None:
        target = parse_dtype(dtype, "callbacks.hf_export.dtype")
        source = state if state is not None else model.state_dict()
        state = {k: v.to(target) if v.is_floating_point() else v for k, v in source.items()}
    model.config.use_cache = True  # training turns the KV cache off; inference wants it
    generation = GenerationConfig.from_model_config(model.config)
    generation.eos_token_id = tokenizer.eos_token_id
    generation.pad_token_id = tokenizer.pad_token_id
    model.generation_config = generation
    try:
        model.save_pretrained(tmp, state_dict=state, safe_serialization=True)
    finally:
        model.config.use_cache = False
    if dtype is not None:
        _set_config_dtype(tmp, dtype)
    tokenizer.save_pretrained(tmp)
    return swap_in(tmp, out_dir)


def swap_in(tmp: Path, out_dir: Path) -> Path:
    """Replace ``out_dir`` by the finished folder ``tmp`` with renames: a crash at any point leaves
    either the previous folder (or its ``.old`` copy) or the new one whole, never a mix."""
    old = out_dir.with_name(out_dir.name + ".old")
    if out_dir.exists():
        shutil.rmtree(old, ignore_errors=True)
        out_dir.rename(old)
    tmp.rename(out_dir)
    shutil.rmtree(old, ignore_errors=True)
    return out_dir


def _set_config_dtype(folder: Path, dtype: str) -> None:
    import json

    path = folder / "config.json"
    config = json.loads(path.read_text())
    config["dtype"] = dtype
    path.write_text(json.dumps(config, indent=2) + "\n")
