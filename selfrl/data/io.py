"""Reading and writing JSONL / Parquet / Hugging Face datasets with errors that point at the line,
and :func:`staged_dir`, for outputs that appear only when complete.

>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "x.jsonl")
>>> write_jsonl(path, [{"question": "q", "answer": "1"}])
>>> read_rows(path, required=("question", "answer"))[0]["answer"]
'1'
"""

from __future__ import annotations

import io
import json
import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

# Files that ``datasets.load_dataset`` reads from a local folder (its packaged builders).
DATA_SUFFIXES = {".jsonl", ".json", ".parquet", ".csv", ".tsv", ".arrow", ".txt"}


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
    for lineno, line in enumerate(_utf8_lines(path), start=1):
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


def _utf8_lines(path: Path) -> io.StringIO:
    """The file's text, line by line (universal newlines, as ``open`` reads it); a byte that is
    not UTF-8 is a :class:`DataError` naming its line, not a traceback."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        lineno = data.count(b"\n", 0, e.start) + 1
        column = e.start - data.rfind(b"\n", 0, e.start)  # 1-based, in bytes
        raise DataError(f"{path}:{lineno}: not UTF-8 text (byte 0x{data[e.start]:02x} at byte {column} of "
                        f"the line); save the file as UTF-8") from None
    return io.StringIO(text, newline=None)


def read_rows(source: str | os.PathLike, required: Sequence[str] = (), split: str = "test",
              subset: str | None = None) -> list[dict]:
    """Read rows from a JSONL or Parquet file, a local dataset folder or a Hugging Face dataset name.

    What exists locally is always read locally: a file as JSONL (Parquet by its suffix); a folder
    as a dataset, either saved with ``save_to_disk`` or data files that ``datasets.load_dataset``
    sorts into splits by their names (``train.jsonl``, ``data/test-00000-of-00001.parquet``).  A
    name that looks like a path (``/``, ``.``, ``~``, more than one ``/``) but does not exist is an
    error; any other name (``openai/gsm8k``) goes to ``datasets.load_dataset``, which needs the hub
    or its cache.  ``split`` picks a dataset's split; ``subset`` its config name (``main``), or,
    for a dataset without named configs, a folder inside it (``data_dir``, e.g. ``data/reward``).
    """
    path = Path(source)
    if path.is_dir():
        rows, where = _read_folder(path, split, subset), f"{source}[{split}]"
    elif path.suffix == ".parquet":
        if not path.is_file():
            raise DataError(f"{path}: no such file")
        rows, where = _read_parquet(path), str(path)
    elif path.is_file() or path.suffix in {".jsonl", ".json"}:
        return read_jsonl(path, required)
    elif _looks_local(str(source)):
        raise DataError(f"{source}: no such file or folder")
    else:
        rows, where = _load_dataset(str(source), split, subset), f"{source}[{split}]"
    if not rows:
        raise DataError(f"{where}: empty dataset")
    for i, row in enumerate(rows, start=1):
        _check_fields(row, required, f"{where}:row {i}")
    return rows


def _looks_local(name: str) -> bool:
    """A path, not a hub id (``owner/name`` has one ``/``)."""
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or name.endswith(("/", os.sep))


def _read_parquet(path: Path) -> list[dict]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pylist()
    except (pa.ArrowException, OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not a readable Parquet file ({_first_line(e)})") from None


def _read_folder(path: Path, split: str, subset: str | None) -> list[dict]:
    """A local dataset folder (``subset``: a folder inside it, or its config name)."""
    if subset and _saved_to_disk(path / subset):
        path, subset = path / subset, None
    if _saved_to_disk(path):
        import datasets

        try:
            ds = datasets.load_from_disk(str(path))
        except (OSError, ValueError) as e:
            raise DataError(f"{path}: not a readable saved dataset ({_first_line(e)})") from None
        if isinstance(ds, datasets.DatasetDict):
            if split not in ds:
                raise DataError(f"{path}: no split {split!r}; splits: {', '.join(sorted(ds))}")
            ds = ds[split]
        return [dict(r) for r in ds]
    if not any(p.suffix in DATA_SUFFIXES for p in path.rglob("*") if p.is_file()):
        raise DataError(f"{path}: a folder without data files (.jsonl, .parquet, ...) or a dataset saved "
                        f"with save_to_disk")
    as_folder = subset is not None and (path / subset).is_dir()
    return _load_dataset(str(path), split, subset, as_folder)


def _saved_to_disk(path: Path) -> bool:
    return (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()


def _load_dataset(name: str, split: str, subset: str | None, as_folder: bool = False) -> list[dict]:
    """``datasets.load_dataset(name, subset, split=split)``; when ``subset`` is no config of the
    dataset, ``data_dir=subset`` (the StackExchange RLHF scripts' form).  Errors are DataErrors."""
    import datasets
    from datasets.exceptions import DatasetsError

    where = f"{name}[{split}]" + (f" (subset {subset!r})" if subset else "")
    failures = (OSError, ValueError, DatasetsError)
    try:
        if subset is None:
            ds = datasets.load_dataset(name, split=split)
        elif as_folder:
            ds = datasets.load_dataset(name, data_dir=subset, split=split)
        else:
            try:
                ds = datasets.load_dataset(name, subset, split=split)
            except ValueError as as_config:  # e.g. "BuilderConfig 'x' not found": try it as a folder
                try:
                    ds = datasets.load_dataset(name, data_dir=subset, split=split)
                except failures as as_dir:
                    raise DataError(f"{where}: could not load the dataset: as a config: "
                                    f"{_first_line(as_config)}; as a folder: {_first_line(as_dir)}") from None
    except failures as e:
        raise DataError(f"{where}: could not load the dataset: {_first_line(e)}") from None
    return [dict(r) for r in ds]


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


@contextmanager
def staged_dir(path: str | os.PathLike) -> Iterator[Path]:
    """A fresh folder beside ``path`` (``NAME.partial``), renamed to ``path`` when the block
    completes (replacing what was there) and removed when it fails: whoever takes ``path``'s
    existence for "done" (a pipeline skipping a stage) never sees a half-written folder.

    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp()) / "model"
    >>> with staged_dir(out) as tmp:
    ...     _ = (tmp / "config.json").write_text("{}")
    ...     print(out.exists())
    False
    >>> [p.name for p in out.iterdir()], [p.name for p in out.parent.iterdir()]
    (['config.json'], ['model'])
    """
    path = Path(path)
    stage = path.with_name(path.name + ".partial")
    _remove(stage)  # left by a run that was killed
    stage.mkdir(parents=True)
    try:
        yield stage
    except BaseException:
        _remove(stage)
        raise
    old = path.with_name(path.name + ".replaced")
    _remove(old)
    if path.exists():
        path.rename(old)
    stage.rename(path)
    _remove(old)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _check_fields(row: dict, required: Sequence[str], where: str) -> None:
    for key in required:
        if key not in row:
            have = ", ".join(sorted(row)) or "none"
            raise DataError(f"{where}: missing field {key!r} (fields present: {have})")
