"""Read raw rows from JSONL, Parquet, a local folder, or a Hugging Face dataset name."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from curio.errors import DataError

DATA_SUFFIXES = (".jsonl", ".json", ".parquet")


def is_local(source: str) -> bool:
    """A path (existing or clearly meant as one), as opposed to a hub dataset name."""
    return Path(source).exists() or source.endswith(DATA_SUFFIXES) or source.startswith((".", "/", "~"))


def check_source(source: str, key: str) -> None:
    """A local source (a path) must exist; ``key`` names the config key in the message."""
    if is_local(source) and not Path(source).expanduser().exists():
        raise DataError(f"{key}: no such file or folder {source!r}")


def read_rows(source: str, split: str = "train", key: str = "data.train") -> list[dict[str, Any]]:
    """All rows of ``source`` (the value of config key ``key``) as dicts.

    A file is read by its suffix; a folder takes every ``.jsonl``/``.json``/``.parquet`` file in it
    (sorted, so the order is reproducible); anything else is a hub dataset name loaded with
    ``datasets.load_dataset(source, split=split)``.
    """
    check_source(source, key)
    path = Path(source).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in DATA_SUFFIXES)
        if not files:
            raise DataError(f"{source}: folder holds no {'/'.join(DATA_SUFFIXES)} files")
        return [row for f in files for row in _read_file(f)]
    if path.is_file():
        return _read_file(path)
    return _read_hub(source, split)


def _read_file(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        rows = pq.read_table(path).to_pylist()
    elif path.suffix in (".jsonl", ".json"):
        rows = _read_json_lines(path)
    else:
        raise DataError(f"{path}: unknown data format {path.suffix!r} (use .jsonl, .json or .parquet)")
    if not rows:
        raise DataError(f"{path}: file has no rows")
    return rows


def _read_json_lines(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from err
    if path.suffix == ".json" and text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}: invalid JSON at line {err.lineno}: {err.msg}") from err
    else:
        rows = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise DataError(f"{path}:{lineno}: invalid JSON line: {err.msg}") from err
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise DataError(f"{path}: row {i}: expected a JSON object, got {type(row).__name__}")
    return rows


def _read_hub(name: str, split: str) -> list[dict[str, Any]]:
    import datasets

    try:
        return list(datasets.load_dataset(name, split=split))
    except Exception as err:  # offline, missing, private: all surface as one clear message
        raise DataError(f"could not load Hugging Face dataset {name!r} (split {split!r}): {err}") from err
