"""A byte-level tokenizer built in code: no files, no training, no network.

It is the tokenizer of ``model=tiny`` (random weights, for tests): 256 byte tokens plus the ChatML
special tokens. Deterministic, so tests that hand-build expected token ids can rely on it.
"""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from curio.models.loading import read_chat_template

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")


def byte_level_tokenizer(chat_template: str | None = "chatml") -> PreTrainedTokenizerFast:
    """Ids 0-255 are the bytes (in ``ByteLevel`` alphabet order), then ``SPECIAL_TOKENS``.

    ``eos`` is ``<|im_end|>`` (the end of an assistant turn, where generation stops) and ``pad`` is
    ``<|endoftext|>``, so padding never collides with a supervised EOS.
    """
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {symbol: i for i, symbol in enumerate(alphabet)}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    core.add_special_tokens(list(SPECIAL_TOKENS))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
    )
    if chat_template is not None:
        tokenizer.chat_template = read_chat_template(chat_template)
    return tokenizer
