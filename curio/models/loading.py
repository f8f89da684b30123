"""Load a causal LM and its tokenizer from a hub id or a local folder, or build one from a config.

Nothing here downloads unless the config names a hub id and the hub is reachable: a local folder
or a config object never touches the network.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from curio.dtypes import parse_dtype
from curio.files import read_text

log = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).parent / "templates"

# Config attributes that change logits after the output layer. The losses project hidden states
# through the output layer themselves (chunked), so such models would silently get wrong logits.
_UNSUPPORTED_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "output_multiplier_scale")


def read_chat_template(template: str) -> str:
    """A chat template given as a bundled name (``chatml``), a ``.jinja`` file path, or jinja text."""
    bundled = TEMPLATES_DIR / f"{template}.jinja"
    if bundled.is_file():
        return read_text(bundled)
    if template.endswith(".jinja"):
        path = Path(template)
        if not path.is_file():
            names = sorted(p.stem for p in TEMPLATES_DIR.glob("*.jinja"))
            raise FileNotFoundError(f"chat_template: no such file {template!r} (bundled names: {names})")
        return read_text(path)
    return template


def load_causal_lm(
    name_or_path: str,
    dtype: str | None = "float32",
    trust_remote_code: bool = False,
    attn_implementation: str | None = None,
    revision: str | None = None,
    init_device: str | None = None,
    **kwargs: Any,
) -> PreTrainedModel:
    """``AutoModelForCausalLM.from_pretrained`` with the project's safe defaults.

    Weights stay in ``dtype`` (float32 by default: fp32 master weights, with bf16 autocast chosen by
    the trainer's ``precision``). ``trust_remote_code`` is off unless the config turns it on.

    ``init_device="meta"`` (what ``train.py`` asks for under ``trainer=fsdp``) reads no weights: the
    parameters are built on the meta device and each rank later reads only its own shards from the
    checkpoint's safetensors files (``curio.models.sharded_loading``). None or ``cpu``: the whole
    model now.
    """
    if init_device == "meta":
        from accelerate import init_empty_weights

        from curio.models.sharded_loading import CHECKPOINT_ATTR, checkpoint_folder

        folder = checkpoint_folder(name_or_path, revision)
        config = AutoConfig.from_pretrained(folder, trust_remote_code=trust_remote_code, **kwargs)
        if attn_implementation is not None:
            config._attn_implementation = attn_implementation
        with init_empty_weights(include_buffers=False):  # parameters on meta; buffers (rotary) real
            model = AutoModelForCausalLM.from_config(config, dtype=parse_dtype(dtype, "dtype"),
                                                     trust_remote_code=trust_remote_code)
        model.tie_weights()  # from_config under init_empty_weights leaves tied weights as two meta tensors
        setattr(model, CHECKPOINT_ATTR, str(folder))
        check_supported(model)
        return model
    if init_device not in (None, "cpu"):
        raise ValueError(f"model.net.init_device={init_device!r}: choose null, cpu or meta")
    model = AutoModelForCausalLM.from_pretrained(
        name_or_path,
        dtype=parse_dtype(dtype, "dtype"),
        trust_remote_code=trust_remote_code,
        attn_implementation=attn_implementation,
        revision=revision,
        **kwargs,
    )
    check_supported(model)
    return model


def build_causal_lm(
    config: dict[str, Any], dtype: str | None = "float32", attn_implementation: str | None = None
) -> PreTrainedModel:
    """A randomly initialised model from a config dict with a ``model_type`` (e.g. ``llama``)."""
    config = dict(config)
    model_type = config.pop("model_type", None)
    if model_type is None:
        raise ValueError("model.net.config needs a model_type (e.g. llama, qwen2)")
    hf_config = AutoConfig.for_model(model_type, **config)
    if attn_implementation is not None:
        hf_config._attn_implementation = attn_implementation
    model = AutoModelForCausalLM.from_config(hf_config, dtype=parse_dtype(dtype, "model.net.dtype"))
    check_supported(model)
    return model


def check_supported(model: PreTrainedModel) -> None:
    """Refuse models whose logits are not ``output_layer(final_hidden)``: the losses rely on it."""
    for name in _UNSUPPORTED_LOGIT_TRANSFORMS:
        value = getattr(model.config, name, None)
        if value not in (None, 1, 1.0):
            raise NotImplementedError(
                f"{type(model).__name__} sets config.{name}={value}; curio's chunked losses compute "
                "logits as lm_head(hidden) and do not apply this transform yet"
            )
    if model.get_output_embeddings() is None:
        raise ValueError(f"{type(model).__name__} has no output embeddings (lm_head)")


def load_tokenizer(
    name_or_path: str,
    chat_template: str | None = None,
    trust_remote_code: bool = False,
    revision: str | None = None,
    **kwargs: Any,
):
    """``AutoTokenizer.from_pretrained``; ``chat_template`` overrides the tokenizer's own."""
    tokenizer = AutoTokenizer.from_pretrained(
        name_or_path, trust_remote_code=trust_remote_code, revision=revision, **kwargs
    )
    if chat_template is not None:
        tokenizer.chat_template = read_chat_template(chat_template)
    if tokenizer.pad_token is None:
        # Padding positions are masked out of attention and loss, so any token id works; reusing EOS
        # is safe here because labels come from template spans, never from ``ids != pad``.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
