"""Read raw rows from JSONL, Parquet, a local folder, or a Hugging Face dataset name."""

from __future__ import annotations

from pathlib import Path

from curio.errors import DataError
from curio.files import Record, read_records

DATA_SUFFIXES = (".jsonl", ".json", ".parquet")


def is_local(source: str) -> bool:
    """A path (existing or clearly meant as one), as opposed to a hub dataset name."""
    return Path(source).exists() or source.endswith(DATA_SUFFIXES) or source.startswith((".", "/", "~"))


def check_source(source: str, key: str) -> None:
    """A local source (a path) must exist; ``key`` names the config key in the message."""
    if is_local(source) and not Path(source).expanduser().exists():
        raise DataError(f"{key}: no such file or folder {source!r}")


def read_rows(source: str, split: str = "train", key: str = "data.train") -> list[Record]:
    """Every row of ``source`` (the value of config key ``key``), located for messages.

    A file is read by its suffix (:func:`curio.files.read_records`: BOM and CRLF tolerated, invalid
    lines returned with their problem); a folder takes every ``.jsonl``/``.json``/``.parquet`` file
    in it (sorted, so the order is reproducible); anything else is a hub dataset name loaded with
    ``datasets.load_dataset(source, split=split)``.
    """
    check_source(source, key)
    path = Path(source).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in DATA_SUFFIXES)
        if not files:
            raise DataError(f"{source}: folder holds no {'/'.join(DATA_SUFFIXES)} files")
        return [record for f in files for record in _read_file(f)]
    if path.is_file():
        return _read_file(path)
    return _read_hub(source, split)


def _read_file(path: Path) -> list[Record]:
    records = read_records(path)
    if not records:
        raise DataError(f"{path}: file has no rows")
    return records


def _read_hub(name: str, split: str) -> list[Record]:
    import datasets

    try:
        rows = datasets.load_dataset(name, split=split)
    except Exception as err:  # offline, missing, private: all surface as one clear message
        raise DataError(f"could not load Hugging Face dataset {name!r} (split {split!r}): {err}") from err
    return [Record(f"{name}[{split}]: row {i}", row) for i, row in enumerate(rows, start=1)]
