"""Reading and writing JSONL / Parquet / Hugging Face datasets with errors that point at the line.

>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "x.jsonl")
>>> write_jsonl(path, [{"question": "q", "answer": "1"}])
>>> read_rows(path, required=("question", "answer"))[0]["answer"]
'1'
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path


class DataError(ValueError):
    """A data file that cannot be used: the message names the file, the line and the field."""


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    """Write ``rows`` as JSON lines (UTF-8), creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_jsonl(path: str | os.PathLike, required: Sequence[str] = ()) -> list[dict]:
    """Read a JSONL file; every line must be a JSON object holding the ``required`` fields.

    Raises:
        DataError: naming the file, the 1-based line and the field, for a malformed line,
            a missing field or an empty file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{lineno}: malformed JSON ({e.msg} at column {e.colno})") from e
            if not isinstance(row, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            _check_fields(row, required, f"{path}:{lineno}")
            rows.append(row)
    if not rows:
        raise DataError(f"{path}: empty file (no JSON lines)")
    return rows


def read_rows(source: str | os.PathLike, required: Sequence[str] = (), split: str = "test") -> list[dict]:
    """Read rows from a JSONL file, a Parquet file or a Hugging Face dataset name.

    A path that exists locally is always read locally; only a name that is not a path is
    passed to ``datasets.load_dataset`` (which needs the hub or its cache).
    """
    path = Path(source)
    if path.suffix in {".jsonl", ".json"} or path.is_file() and path.suffix != ".parquet":
        return read_jsonl(path, required)
    if path.suffix == ".parquet":
        if not path.is_file():
            raise DataError(f"{path}: no such file")
        import pyarrow.parquet as pq

        rows = pq.read_table(path).to_pylist()
        where = str(path)
    else:
        if path.exists() or os.sep in str(source) or str(source).startswith("."):
            raise DataError(f"{source}: not a JSONL or Parquet file")
        import datasets

        rows = [dict(r) for r in datasets.load_dataset(str(source), split=split)]
        where = f"{source}[{split}]"
    if not rows:
        raise DataError(f"{where}: empty dataset")
    for i, row in enumerate(rows, start=1):
        _check_fields(row, required, f"{where}:row {i}")
    return rows


def _check_fields(row: dict, required: Sequence[str], where: str) -> None:
    for key in required:
        if key not in row:
            have = ", ".join(sorted(row)) or "none"
            raise DataError(f"{where}: missing field {key!r} (fields present: {have})")
