"""Every row of the bad-input table in docs/reliability.md: the message names file, row and field.

Each case writes two good rows and then the bad one (row 2), and reads it through the data module,
as a training run does before any model is loaded.
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
    assert message.startswith(f"{path}: row 2: ") and needle in message, message
    # With on_bad_row=skip the row is dropped and counted instead (prompt length has its own rule).
    if case != "prompt over the limit":
        dm = setup(path, on_bad_row="skip")
        assert dm.report["train"]["skipped_bad"] == 1 and len(dm.train_set) == 2


@pytest.mark.parametrize(("content", "needle"), [
    (b'{"prompt": "q", "response": "a"}\n{"prompt": "q", "resp\n', ":2: invalid JSON line"),
    (b"", "file has no rows"),
    (b'{"prompt": "q", "response": "\xff\xfe"}\n', "not UTF-8 text"),
    (b'["prompt", "response"]\n', "row 0: expected a JSON object, got list"),
])
def test_bad_file_names_file_and_line(tmp_path, content, needle):
    path = tmp_path / "train.jsonl"
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        setup(path)
    assert str(path) in str(info.value) and needle in str(info.value)


def test_unknown_suffix_and_unknown_row_shape(tmp_path):
    csv = tmp_path / "train.csv"
    csv.write_text("prompt,response\nq,a\n")
    with pytest.raises(DataError, match=r"train.csv: unknown data format '.csv'"):
        setup(csv)
    path = write(tmp_path, [{"question": "q", "answer": "a"}])
    with pytest.raises(DataError, match=r"train.jsonl: row 0: cannot tell the format from fields \['answer', "
                                        r"'question'\].*or set data.format"):
        setup(path)


def test_prompt_over_limit_is_dropped_and_counted_by_default(tmp_path):
    path = write(tmp_path, [GOOD, GOOD, {"prompt": "x" * 500, "response": "a"}])
    dm = setup(path, max_prompt_tokens=100)
    assert dm.report["train"]["dropped_prompt_too_long"] == 1 and len(dm.train_set) == 2


def test_unknown_policy_names_the_key_and_choices(tmp_path):
    with pytest.raises(ConfigError, match=r"data.on_bad_row='ignore': choose one of \['error', 'skip'\]"):
        SFTDataModule(byte_level_tokenizer(), train=str(write(tmp_path, [GOOD])), on_bad_row="ignore")
