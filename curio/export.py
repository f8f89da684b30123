"""Write a Hugging Face checkpoint (model, tokenizer, chat template) safely."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from transformers import GenerationConfig, PreTrainedModel


def export_hf(model: PreTrainedModel, tokenizer, out_dir: str | Path, dtype: str | None = None) -> Path:
    """Save ``model`` and ``tokenizer`` to ``out_dir`` so ``from_pretrained`` (and vLLM) load it.

    Written to a temporary sibling first, then swapped in with renames: a crash mid-write leaves
    the previous export intact.
    """
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    old = out_dir.with_name(out_dir.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    state = None
    if dtype is not None:
        target = getattr(torch, dtype)
        state = {k: v.to(target) if v.is_floating_point() else v for k, v in model.state_dict().items()}
    model.config.use_cache = True  # training turns the KV cache off; inference wants it
    generation = GenerationConfig.from_model_config(model.config)
    generation.eos_token_id = tokenizer.eos_token_id
    generation.pad_token_id = tokenizer.pad_token_id
    model.generation_config = generation
    model.save_pretrained(tmp, state_dict=state, safe_serialization=True)
    if dtype is not None:
        _set_config_dtype(tmp, dtype)
    tokenizer.save_pretrained(tmp)
    model.config.use_cache = False
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
