"""A small byte-level BPE tokenizer for the tiny world, wrapped as a Hugging Face fast tokenizer.

Pre-tokenisation isolates every digit and every punctuation character before the byte-level split, so
BPE merges only ever join letters and spaces (words like `` so`` or ``boxed``). Consequences:

- numbers are one token per digit, as in Qwen and Llama 3, so arithmetic is learnable digit by digit;
- every character of an expression (digit, operator, bracket) is its own token, so the character labels
  of :mod:`curio.tinyworld.labels` carry over to tokens without any merging ambiguity.

Special tokens: ``<|endoftext|>`` (id 0, padding), ``<|im_start|>`` (1), ``<|im_end|>`` (2). The chat
template is ChatML. ``eos_token`` is ``<|im_end|>``: the trainer appends ``eos_token`` after a response
and the template closes every turn with it, so a model trained this way ends its turn with the token
that generation stops on. ``pad_token`` is ``<|endoftext|>``, a token that never appears in training
text, so padding can never be confused with a real end of turn.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

PAD_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD_TOKEN, IM_START, IM_END)
MODEL_MAX_LENGTH = 1024

# ChatML. Every turn, the assistant's included, ends with <|im_end|> and a newline; the generation
# prompt opens an assistant turn.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def _pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(r"\p{N}"), behavior="isolated"),
            pre_tokenizers.Split(Regex(r"[^\s\p{L}\p{N}]"), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )


def train_tokenizer(
    conversations: Iterable[Sequence[Mapping[str, str]]], vocab_size: int = 512
) -> PreTrainedTokenizerFast:
    """Train the BPE on chat messages and wrap it with the special tokens and the chat template.

    ``vocab_size`` is an upper bound: the tiny world has few words, so merges run out well before it.
    Role names are fed as text too, so ``system``/``user``/``assistant`` in the template become one token.
    """
    texts = (
        text for messages in conversations for message in messages for text in (message["role"], message["content"])
    )
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = _pre_tokenizer()
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=IM_END,
        pad_token=PAD_TOKEN,
        chat_template=CHAT_TEMPLATE,
        model_max_length=MODEL_MAX_LENGTH,
        clean_up_tokenization_spaces=False,
    )


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, folder: Path) -> None:
    """Save in Hugging Face format, the chat template inside ``tokenizer_config.json``."""
    tokenizer.save_pretrained(str(folder), save_jinja_files=False)
