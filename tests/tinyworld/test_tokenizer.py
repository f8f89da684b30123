"""The tiny-world tokenizer: round trip, one digit per token, ChatML template, offline reload."""

from __future__ import annotations

from transformers import AutoTokenizer

from curio.tinyworld.prompts import SYSTEM_PROMPT

MESSAGES = [
    {"role": "system", "content": SYSTEM_PROMPT},
    {"role": "user", "content": "Compute 12*3-45."},
    {"role": "assistant", "content": "12*3=36, so 36-45\n\\boxed{-9}"},
]


def test_round_trip(tokenizer, small_corpus):
    for row in small_corpus["pretrain"][:50]:
        for message in row["messages"]:
            ids = tokenizer(message["content"], add_special_tokens=False)["input_ids"]
            assert tokenizer.decode(ids) == message["content"]


def test_digits_and_symbols_are_single_tokens(tokenizer):
    tokens = tokenizer.tokenize("(123+45)*6=1008")
    assert tokens == ["(", "1", "2", "3", "+", "4", "5", ")", "*", "6", "=", "1", "0", "0", "8"]


def test_special_tokens(tokenizer):
    assert tokenizer.convert_ids_to_tokens([0, 1, 2]) == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    assert (tokenizer.eos_token, tokenizer.pad_token, tokenizer.bos_token) == ("<|im_end|>", "<|endoftext|>", None)
    assert tokenizer("<|im_start|>user\n", add_special_tokens=False)["input_ids"][0] == 1
    assert tokenizer("x", add_special_tokens=True)["input_ids"] == tokenizer("x", add_special_tokens=False)["input_ids"]


def test_chat_template_exact(tokenizer):
    prompt = tokenizer.apply_chat_template(MESSAGES[:2], tokenize=False, add_generation_prompt=True)
    assert prompt == (
        "<|im_start|>system\nSolve step by step.<|im_end|>\n"
        "<|im_start|>user\nCompute 12*3-45.<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    full = tokenizer.apply_chat_template(MESSAGES, tokenize=False)
    assert full == prompt + "12*3=36, so 36-45\n\\boxed{-9}<|im_end|>\n"
    assert tokenizer.apply_chat_template(MESSAGES[:2], tokenize=False) == prompt.removesuffix("<|im_start|>assistant\n")


def test_reload_offline_from_folder(tokenizer, tokenizer_dir):
    reloaded = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    text = tokenizer.apply_chat_template(MESSAGES, tokenize=False)
    assert reloaded.apply_chat_template(MESSAGES, tokenize=False) == text
    assert reloaded(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert (reloaded.eos_token_id, reloaded.pad_token_id) == (2, 0)
    assert reloaded.is_fast
    encoding = reloaded("7*8=56", return_offsets_mapping=True)
    assert encoding["offset_mapping"] == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6)]
