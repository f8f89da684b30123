"""Every row of the bad-input table in docs/reliability.md: the message names file, line and field.

Each case writes two good rows and then the bad one (line 3 of the file), and reads it through the
data module, as a training run does before any model is loaded.
"""

import json

import pytest

from curio.data import SFTDataModule
from curio.errors import ConfigError, DataError
from curio.models import byte_level_tokenizer

GOOD = {"prompt": "What is 1+1?", "response": "2"}
MSG_GOOD = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
AUTH_GOOD = {"prompt": [{"role": "user", "content": "q"}], "target": [{"role": "assistant", "content": "<think>\na"}]}

ROW_CASES = {
    "missing field": (GOOD, {"prompt": "q"}, "missing field 'response'"),
    "wrong type": (GOOD, {"prompt": "q", "response": 42}, "field 'response': expected a string, got int"),
    "empty response": (GOOD, {"prompt": "q", "response": "  "}, "field 'response': empty string"),
    "messages not a list": (MSG_GOOD, {"messages": "hi"}, "field 'messages': expected a non-empty list"),
    "unknown role": (MSG_GOOD, {"messages": [{"role": "bot", "content": "a"}]}, "field 'messages'[0].role"),
    "no assistant turn": (MSG_GOOD, {"messages": [{"role": "user", "content": "q"}]}, "no assistant turn"),
    "empty authors target": (AUTH_GOOD, {"prompt": [{"role": "user", "content": "q"}],
                                         "target": [{"role": "assistant", "content": "<think>\n "}]},
                             "field 'target': empty response"),
    "prompt over the limit": (GOOD, {"prompt": "x" * 500, "response": "a"},
                              "field 'prompt': the prompt has"),
}


def write(tmp_path, rows, name="train.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def setup(path, **kwargs):
    dm = SFTDataModule(byte_level_tokenizer(), train=str(path), val_size=0, **kwargs)
    dm.setup()
    return dm


@pytest.mark.parametrize("case", list(ROW_CASES))
def test_bad_row_names_file_row_and_field(tmp_path, case):
    good, bad, needle = ROW_CASES[case]
    path = write(tmp_path, [good, good, bad])
    kwargs = {"prompt_overflow": "error", "max_prompt_tokens": 100} if case == "prompt over the limit" else {}
    with pytest.raises(DataError) as info:
        setup(path, **kwargs)
    message = str(info.value)
    assert message.startswith(f"{path}:3: ") and needle in message, message
    # With on_bad_row=skip the row is dropped and counted instead (prompt length has its own rule).
    if case != "prompt over the limit":
        dm = setup(path, on_bad_row="skip")
        assert dm.report["train"]["skipped_bad_row"] == 1 and len(dm.train_set) == 2


GOOD_LINE = b'{"prompt": "q", "response": "a"}'


@pytest.mark.parametrize(("content", "needle"), [
    (GOOD_LINE + b'\n\n{"prompt": "q", "resp\n', ":3: invalid JSON: Unterminated string"),
    (b"", "file has no rows"),
    (b'{"prompt": "q", "response": "\xff\xfe"}\n', "not UTF-8 text"),
    (GOOD_LINE + b'\n["prompt", "response"]\n', ":2: expected a JSON object, got list"),
])
def test_bad_file_names_file_and_line(tmp_path, content, needle):
    path = tmp_path / "train.jsonl"
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        setup(path)
    assert str(path) in str(info.value) and needle in str(info.value), str(info.value)


def test_bom_crlf_and_blank_lines_read_like_a_plain_file(tmp_path):
    """A file saved by a Windows editor: UTF-8 byte-order mark, CRLF line ends, blank lines."""
    rows = [GOOD, GOOD, {"prompt": "q3", "response": "a3"}]
    plain = write(tmp_path, rows, "plain.jsonl")
    windows = tmp_path / "windows.jsonl"
    windows.write_bytes(b"\xef\xbb\xbf" + b"\r\n\r\n".join(json.dumps(r).encode() for r in rows) + b"\r\n\r\n")
    a, b = setup(plain), setup(windows)
    assert [s.input_ids for s in a.train_set.samples] == [s.input_ids for s in b.train_set.samples]
    # Line numbers are the file's, as an editor shows them, blank lines counted.
    windows.write_bytes(b"\xef\xbb\xbf" + GOOD_LINE + b"\r\n\r\n" + b'{"prompt": "q"}\r\n')
    with pytest.raises(DataError, match=rf"{windows}:3: missing field 'response'"):
        setup(windows)


def test_unicode_line_separators_inside_strings_stay_in_their_row(tmp_path):
    """JSON strings may hold U+0085, U+2028 and U+2029 unescaped (json.dumps with ensure_ascii=False
    writes them so); they are not line ends of a JSON Lines file."""
    rows = [GOOD, {"prompt": "a\u2028b\u2029c", "response": "d\x85e"}]
    escaped = write(tmp_path, rows, "escaped.jsonl")
    raw = tmp_path / "raw.jsonl"
    raw.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    assert "\u2028" in raw.read_text(encoding="utf-8")
    a, b = setup(escaped), setup(raw)
    assert b.report["train"]["rows"] == 2
    assert [s.input_ids for s in a.train_set.samples] == [s.input_ids for s in b.train_set.samples]


def test_skip_mode_skips_and_counts_every_kind_of_bad_line(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_bytes(b"\n".join([GOOD_LINE, b'{"prompt": ', b"[1, 2]", b'"text"', b'{"prompt": "q"}', GOOD_LINE]))
    dm = setup(path, on_bad_row="skip")
    report = dm.report["train"]
    assert len(dm.train_set) == 2 and report["rows"] == 6
    assert (report["skipped_invalid_json"], report["skipped_not_an_object"], report["skipped_bad_row"]) == (1, 2, 1)


def test_unknown_suffix_and_unknown_row_shape(tmp_path):
    csv = tmp_path / "train.csv"
    csv.write_text("prompt,response\nq,a\n")
    with pytest.raises(DataError, match=r"train.csv: unknown data format '.csv'"):
        setup(csv)
    path = write(tmp_path, [{"question": "q", "answer": "a"}])
    with pytest.raises(DataError, match=r"train.jsonl:1: cannot tell the format from fields \['answer', "
                                        r"'question'\].*or set data.format"):
        setup(path)


def test_prompt_over_limit_is_dropped_and_counted_by_default(tmp_path):
    path = write(tmp_path, [GOOD, GOOD, {"prompt": "x" * 500, "response": "a"}])
    dm = setup(path, max_prompt_tokens=100)
    assert dm.report["train"]["dropped_prompt_too_long"] == 1 and len(dm.train_set) == 2


def test_unknown_policy_names_the_key_and_choices(tmp_path):
    with pytest.raises(ConfigError, match=r"data.on_bad_row='ignore': choose one of \['error', 'skip'\]"):
        SFTDataModule(byte_level_tokenizer(), train=str(write(tmp_path, [GOOD])), on_bad_row="ignore")
