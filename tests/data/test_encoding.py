"""Each row format becomes exactly the token ids and loss mask spec section 2 prescribes.

Expected ids are built by hand from the byte-level vocabulary (GPT-2 byte-to-unicode table, written
out independently here), so these tests check the rendering and masking, not the tokenizer.
"""

import re

import pytest

from curio.data.encoding import ConversationEncoder
from curio.data.formats import to_conversation
from curio.errors import ConfigError, DataError
from curio.models import byte_level_tokenizer

SPECIAL = {"<|endoftext|>": 256, "<|im_start|>": 257, "<|im_end|>": 258}


def _byte_symbols() -> dict[int, str]:
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


SYMBOL_ID = {s: i for i, s in enumerate(sorted(_byte_symbols().values()))}
BYTE_ID = {b: SYMBOL_ID[s] for b, s in _byte_symbols().items()}


def ids(text: str) -> list[int]:
    """Hand tokenizer: special tokens by name, every other byte on its own."""
    out = []
    for part in re.split(r"(<\|[a-z_]+\|>)", text):
        if part in SPECIAL:
            out.append(SPECIAL[part])
        else:
            out.extend(BYTE_ID[b] for b in part.encode())
    return out


def expect(*segments: tuple[str, bool]) -> tuple[list[int], list[bool]]:
    all_ids, mask = [], []
    for text, supervised in segments:
        piece = ids(text)
        all_ids += piece
        mask += [supervised] * len(piece)
    return all_ids, mask


@pytest.fixture(scope="module")
def tok():
    return byte_level_tokenizer()


def encode(tok, row, fmt="auto", system=None, **limits):
    return ConversationEncoder(tok, **limits).encode(to_conversation(row, fmt, system))


def test_byte_tokenizer_matches_hand_table(tok):
    text = "<|im_start|>user\nWhat is 2+2? é<|im_end|>"
    assert tok(text, add_special_tokens=False)["input_ids"] == ids(text)
    assert tok.eos_token_id == SPECIAL["<|im_end|>"] and tok.pad_token_id == SPECIAL["<|endoftext|>"]


def test_prompt_response(tok):
    enc, dropped = encode(tok, {"prompt": "2+2?", "response": "4"}, system="Be brief.")
    want_ids, want_mask = expect(
        ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n", False),
        ("4<|im_end|>", True),  # response ++ [EOS]
    )
    assert dropped is None and enc.input_ids == want_ids and enc.loss_mask == want_mask and not enc.truncated


def test_messages_multi_turn_supervises_assistant_turns_only(tok):
    row = {"messages": [
        {"role": "user", "content": "a?"}, {"role": "assistant", "content": "A"},
        {"role": "user", "content": "b?"}, {"role": "assistant", "content": "B"},
    ]}
    enc, _ = encode(tok, row)
    want_ids, want_mask = expect(
        ("<|im_start|>user\na?<|im_end|>\n<|im_start|>assistant\n", False),
        ("A<|im_end|>\n", True),
        ("<|im_start|>user\nb?<|im_end|>\n<|im_start|>assistant\n", False),
        ("B<|im_end|>\n", True),
    )
    assert enc.input_ids == want_ids and enc.loss_mask == want_mask


def test_messages_appends_eos_when_template_turn_lacks_it(tok):
    tok2 = byte_level_tokenizer()
    tok2.chat_template = "{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}{% endfor %}" \
        "{% if add_generation_prompt %}[assistant]{% endif %}"
    enc, _ = encode(tok2, {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "x"}]})
    want_ids, want_mask = expect(("[user]q[assistant]", False), ("x<|im_end|>", True))
    assert enc.input_ids == want_ids and enc.loss_mask == want_mask


def test_authors_format_strips_think_prefix_only_when_prompt_opens_it(tok):
    row = {"prompt": [{"role": "user", "content": "1+1?"}],
           "target": [{"role": "assistant", "content": "<think>\nso 2</think> \\boxed{2}\n"}]}
    # The chatml template does not open <think>, so the prefix stays part of the response...
    enc, _ = ConversationEncoder(tok).encode(to_conversation(row, "authors", think_prefix=None))
    want_ids, want_mask = expect(
        ("<|im_start|>user\n1+1?<|im_end|>\n<|im_start|>assistant\n", False),
        ("<think>\nso 2</think> \\boxed{2}<|im_end|>", True),  # whitespace-stripped target
    )
    assert enc.input_ids == want_ids and enc.loss_mask == want_mask
    # ...while with a template that opens it, it is stripped from the target (spec section 2).
    enc, _ = ConversationEncoder(tok).encode(to_conversation(row, "authors", think_prefix="<think>\n"))
    assert enc.input_ids[-len(ids("so 2</think> \\boxed{2}<|im_end|>")):] == ids("so 2</think> \\boxed{2}<|im_end|>")


def test_response_truncation_cuts_eos_and_prompt_overflow_drops(tok):
    row = {"prompt": "q", "response": "abcdef"}
    enc, _ = encode(tok, row, max_response_tokens=3)
    assert enc.truncated and enc.input_ids[-3:] == ids("abc") and enc.loss_mask[-4:] == [False, True, True, True]
    assert SPECIAL["<|im_end|>"] not in enc.input_ids[-3:]
    enc, reason = encode(tok, row, max_prompt_tokens=5)
    assert enc is None and reason == "prompt_too_long"
    enc, reason = encode(tok, row, max_response_tokens=3, response_overflow="drop")
    assert enc is None and reason == "response_too_long"
    enc, _ = encode(tok, row, max_prompt_tokens=5, prompt_overflow="truncate_left")
    assert enc.loss_mask.index(True) == 5 and enc.input_ids[:5] == ids("tant\n")  # the prompt's end is kept


@pytest.mark.parametrize(("row", "field"), [
    ({"prompt": "q"}, "response"),
    ({"prompt": "q", "response": 3}, "response"),
    ({"prompt": "q", "response": "  "}, "response"),
    ({"messages": [{"role": "user", "content": "q"}]}, "messages"),
    ({"messages": [{"role": "robot", "content": "q"}]}, "messages"),
    ({"prompt": [{"role": "user", "content": "q"}], "target": []}, "target"),
])
def test_malformed_rows_name_the_field(tok, row, field):
    with pytest.raises(DataError, match=field):
        encode(tok, row)


def test_unknown_row_shape_lists_formats(tok):
    with pytest.raises(DataError, match="prompt'\\+'response'"):
        encode(tok, {"question": "q"})


def test_missing_chat_template_is_a_config_error():
    with pytest.raises(ConfigError, match="chat_template"):
        ConversationEncoder(byte_level_tokenizer(chat_template=None))
