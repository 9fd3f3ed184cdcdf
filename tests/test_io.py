"""JSONL / Parquet reading with errors that name the file, the line and the field."""

from __future__ import annotations

import json
import sys
import types

import pytest

from selfrl.data.io import DataError, read_jsonl, read_rows, write_jsonl


def _write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


def test_round_trip(tmp_path):
    rows = [{"question": "q1", "answer": "1"}, {"question": "ü", "answer": "2", "extra": [1, 2]}]
    path = tmp_path / "sub" / "x.jsonl"
    write_jsonl(path, rows)
    assert read_jsonl(path, required=("question", "answer")) == rows
    assert read_rows(path, required=("question",)) == rows
    assert read_rows(str(path)) == rows


def test_blank_lines_skipped(tmp_path):
    path = _write(tmp_path / "x.jsonl", '{"a": 1}\n\n   \n{"a": 2}\n')
    assert [r["a"] for r in read_jsonl(path)] == [1, 2]


def test_malformed_line_names_file_and_line(tmp_path):
    path = _write(tmp_path / "bad.jsonl", '{"a": 1}\n\n{"a": 2\n{"a": 3}\n')
    with pytest.raises(DataError) as e:
        read_jsonl(path)
    msg = str(e.value)
    assert str(path) in msg
    assert f"{path}:3:" in msg  # the blank line 2 still counts
    assert "malformed JSON" in msg


def test_missing_field_names_file_line_and_field(tmp_path):
    path = _write(tmp_path / "m.jsonl", '{"question": "q", "answer": "1"}\n{"question": "q2"}\n')
    with pytest.raises(DataError) as e:
        read_jsonl(path, required=("question", "answer"))
    msg = str(e.value)
    assert f"{path}:2:" in msg
    assert "'answer'" in msg
    assert "question" in msg  # the fields that are present are listed


def test_missing_field_through_read_rows(tmp_path):
    path = _write(tmp_path / "m.jsonl", '{"q": 1}\n')
    with pytest.raises(DataError, match=r"m\.jsonl:1: missing field 'answer'"):
        read_rows(path, required=("answer",))


@pytest.mark.parametrize("text", ["", "\n\n  \n"])
def test_empty_file_names_file(tmp_path, text):
    path = _write(tmp_path / "empty.jsonl", text)
    with pytest.raises(DataError) as e:
        read_jsonl(path)
    assert str(path) in str(e.value)
    assert "empty" in str(e.value)


@pytest.mark.parametrize("line, kind", [
    ("[1, 2]", "list"), ('"text"', "str"), ("3", "int"), ("null", "NoneType"),
])
def test_non_object_line(tmp_path, line, kind):
    path = _write(tmp_path / "n.jsonl", '{"a": 1}\n' + line + "\n")
    with pytest.raises(DataError) as e:
        read_jsonl(path)
    msg = str(e.value)
    assert f"{path}:2:" in msg
    assert kind in msg


def test_missing_file(tmp_path):
    path = tmp_path / "nope.jsonl"
    with pytest.raises(DataError) as e:
        read_jsonl(path)
    assert str(path) in str(e.value)
    assert "no such file" in str(e.value)


def test_data_error_is_value_error():
    assert issubclass(DataError, ValueError)


@pytest.fixture
def no_hub(monkeypatch):
    """Make any call into ``datasets.load_dataset`` fail loudly."""
    fake = types.ModuleType("datasets")

    def load_dataset(*args, **kwargs):
        raise AssertionError(f"hub lookup attempted: {args}")

    fake.load_dataset = load_dataset
    monkeypatch.setitem(sys.modules, "datasets", fake)


@pytest.mark.parametrize("name", ["missing.jsonl", "missing.json", "org/missing.jsonl"])
def test_read_rows_missing_jsonl_is_data_error_not_hub(tmp_path, no_hub, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as e:
        read_rows(name)
    assert "no such file" in str(e.value)
    with pytest.raises(DataError):
        read_rows(tmp_path / name)


def test_read_rows_missing_parquet_is_data_error(tmp_path, no_hub):
    with pytest.raises(DataError, match="no such file"):
        read_rows(tmp_path / "missing.parquet")


def test_read_rows_local_path_without_suffix_not_hub(tmp_path, no_hub):
    with pytest.raises(DataError):
        read_rows(str(tmp_path / "not_there"))
    # An existing file without a known suffix is read locally as JSONL.
    path = _write(tmp_path / "rows.txt", json.dumps({"a": 1}) + "\n")
    assert read_rows(path) == [{"a": 1}]


def test_read_rows_existing_directory_is_data_error(tmp_path, no_hub):
    with pytest.raises(DataError):
        read_rows(tmp_path)


# --- parquet ------------------------------------------------------------------------


def test_parquet_round_trip(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rows = [{"question": "q1", "answer": "1", "n": 3}, {"question": "q2", "answer": "2", "n": 4}]
    path = tmp_path / "x.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    assert read_rows(path, required=("question", "answer")) == rows


def test_parquet_missing_field_names_file_and_row(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "x.parquet"
    pq.write_table(pa.Table.from_pylist([{"question": "q1"}, {"question": "q2"}]), path)
    with pytest.raises(DataError) as e:
        read_rows(path, required=("question", "answer"))
    msg = str(e.value)
    assert str(path) in msg
    assert "row 1" in msg
    assert "'answer'" in msg


def test_parquet_empty_names_file(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "e.parquet"
    pq.write_table(pa.table({"question": pa.array([], pa.string())}), path)
    with pytest.raises(DataError) as e:
        read_rows(path)
    assert str(path) in str(e.value)
    assert "empty" in str(e.value)
