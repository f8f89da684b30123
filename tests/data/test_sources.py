"""Reading JSONL, Parquet, folders; the data module's split, counts and errors."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curio.data import SFTDataModule
from curio.data.sources import read_rows
from curio.errors import DataError
from curio.models import byte_level_tokenizer

ROWS = [{"prompt": f"q{i}", "response": f"a{i}"} for i in range(10)]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_jsonl_parquet_and_folder_read_the_same_rows(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", ROWS[:5])
    pq.write_table(pa.Table.from_pylist(ROWS[5:]), tmp_path / "b.parquet")
    def values(source):
        return [r.value for r in read_rows(str(source))]

    assert values(tmp_path / "a.jsonl") == ROWS[:5]
    assert values(tmp_path / "b.parquet") == ROWS[5:]
    assert values(tmp_path) == ROWS
    assert [r.where for r in read_rows(str(tmp_path / "b.parquet"))][:2] == [f"{tmp_path / 'b.parquet'}: row {i}" for i in (1, 2)]


def test_authors_parquet_with_nested_lists(tmp_path):
    rows = [{"prompt": [{"role": "user", "content": "1+1?"}],
             "target": [{"role": "assistant", "content": "<think>\nok</think> \\boxed{2}"}]}] * 4
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "t.parquet")
    dm = SFTDataModule(byte_level_tokenizer(), train=str(tmp_path / "t.parquet"), val_size=1)
    dm.setup()
    assert len(dm.train_set) == 3 and len(dm.val_set) == 1


def test_bad_lines_come_back_located_with_their_problem(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "q", "response": "a"}\n{"prompt": \n\n[1, 2]\n')
    records = read_rows(str(path))
    assert [(r.where, r.reason) for r in records] == [
        (f"{path}:1", None), (f"{path}:2", "invalid_json"), (f"{path}:4", "not_an_object")]
    assert records[2].problem == "expected a JSON object, got list"
    path.write_text("")
    with pytest.raises(DataError, match="no rows"):
        read_rows(str(path))


def test_non_utf8(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"prompt": "\xff"}\n')
    with pytest.raises(DataError, match="not UTF-8"):
        read_rows(str(path))


@pytest.mark.parametrize("key", ["train", "val"])
def test_a_missing_file_is_named_by_its_key_before_anything_is_read(tmp_path, key):
    present = write_jsonl(tmp_path / "d.jsonl", ROWS)
    sources = {"train": str(present), "val": str(present), key: str(tmp_path / "nope.jsonl")}
    with pytest.raises(DataError, match=f"data.{key}: no such file or folder .*nope.jsonl"):
        SFTDataModule(byte_level_tokenizer(), **sources).setup()


def test_bad_row_error_names_file_row_field_and_skip_counts(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", ROWS[:3] + [{"prompt": "q"}] + ROWS[3:])
    dm = SFTDataModule(byte_level_tokenizer(), train=str(path), val_size=0)
    with pytest.raises(DataError) as info:
        dm.setup()
    assert f"{path}:4: missing field 'response'" in str(info.value)
    dm = SFTDataModule(byte_level_tokenizer(), train=str(path), val_size=0, on_bad_row="skip")
    dm.setup()
    assert dm.report["train"]["skipped_bad_row"] == 1 and len(dm.train_set) == 10


def test_length_rules_are_counted(tmp_path):
    rows = ROWS + [{"prompt": "x" * 300, "response": "a"}, {"prompt": "q", "response": "y" * 300}]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    dm = SFTDataModule(byte_level_tokenizer(), train=str(path), val_size=0, max_prompt_tokens=100,
                       max_response_tokens=50)
    dm.setup()
    assert dm.report["train"]["dropped_prompt_too_long"] == 1
    assert dm.report["train"]["truncated"] == 1 and dm.report["train"]["kept"] == 11


def test_val_split_is_fixed_and_disjoint(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", ROWS)
    a = SFTDataModule(byte_level_tokenizer(), train=str(path), val_size=0.3, seed=1)
    b = SFTDataModule(byte_level_tokenizer(), train=str(path), val_size=0.3, seed=2)
    a.setup(), b.setup()
    val = [s.input_ids for s in a.val_set.samples]
    assert len(val) == 3 and val == [s.input_ids for s in b.val_set.samples]
    assert not {tuple(v) for v in val} & {tuple(s.input_ids) for s in a.train_set.samples}
