"""Reading a user's files: UTF-8 text with or without a byte-order mark, LF or CRLF line ends, and
rows of JSON lines, JSON arrays and Parquet tables located the way an editor shows them.

Training data, benchmarks, chat templates and the tiny world's files are all read here, so a file
saved by any editor reads the same everywhere, and every message about a row names
``<file>:<line>`` (JSON lines: the file's 1-based line number) or ``<file>: row <n>`` (Parquet and
JSON arrays: the 1-based row).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curio.errors import DataError


def jsonl_lines(text: str) -> list[str]:
    """The lines of a JSON Lines text, split at "\\n" only (a CRLF's "\\r" is JSON whitespace).

    Not ``str.splitlines()``: it also splits at characters that a JSON string may hold unescaped
    (U+0085, U+2028, U+2029), which ``json.dumps(..., ensure_ascii=False)`` writes as they are and
    a model's samples can contain.
    """
    return text.split("\n")


def read_text(path: str | Path) -> str:
    """The file's text, decoded as UTF-8 with an optional byte-order mark."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from err


@dataclass(frozen=True)
class Record:
    """One row of a file, or why it is not one.

    Attributes:
        where: ``<file>:<line>`` or ``<file>: row <n>``, 1-based, for messages.
        value: the parsed row (a dict for a usable row); None when ``problem`` is set.
        problem: why the row cannot be used (``invalid JSON: ...``), else None.
        reason: a short name of the problem for counting skipped rows (``invalid_json``,
            ``not_an_object``), else None.
    """

    where: str
    value: Any = None
    problem: str | None = None
    reason: str | None = None


def read_records(path: str | Path) -> list[Record]:
    """Every row of a ``.jsonl``, ``.json`` (JSON lines or one array) or ``.parquet`` file.

    Blank lines are not rows. A line that is not valid JSON, or is JSON but not an object, comes
    back as a :class:`Record` with its ``problem``, so the caller can stop or skip and count it.
    Raises :class:`DataError` only for what makes the whole file unreadable (not UTF-8, a broken
    JSON array, an unknown suffix).
    """
    path = Path(path)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return [_record(f"{path}: row {i}", row) for i, row in enumerate(pq.read_table(path).to_pylist(), start=1)]
    if path.suffix not in (".jsonl", ".json"):
        raise DataError(f"{path}: unknown data format {path.suffix!r} (use .jsonl, .json or .parquet)")
    text = read_text(path)
    if path.suffix == ".json" and text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{err.lineno}: invalid JSON: {err.msg}") from err
        return [_record(f"{path}: row {i}", row) for i, row in enumerate(rows, start=1)]
    records = []
    for lineno, line in enumerate(jsonl_lines(text), start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            records.append(_record(where, json.loads(line)))
        except json.JSONDecodeError as err:
            records.append(Record(where, problem=f"invalid JSON: {err.msg} (column {err.colno})", reason="invalid_json"))
    return records


def _record(where: str, row: Any) -> Record:
    if isinstance(row, dict):
        return Record(where, row)
    return Record(where, problem=f"expected a JSON object, got {type(row).__name__}", reason="not_an_object")
