"""Readers for tables: CSV/TSV, JSONL (or a JSON array of records) and Parquet.

Every problem with the file becomes a one-line UserError naming the file and, where it
applies, the line: a missing or empty file, bytes that are not UTF-8, a row with the
wrong number of fields, a line that is not a JSON object.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import re
from pathlib import Path
from typing import Any

import pandas as pd

from practicum.data.raw import Loaded, Table
from practicum.errors import UserError

log = logging.getLogger(__name__)


def read_table(path: Path, fmt: str) -> Table:
    """Read a CSV, JSONL or Parquet file into a Table (index = 0-based data row)."""
    if fmt == "parquet":
        frame = _read_parquet(path)
    else:
        text = read_text(path)
        frame = _read_csv(path, text) if fmt == "csv" else _read_json_records(path, text)
    if frame.shape[1] == 0:
        raise UserError(f"{path}: no columns found; the first line must name the columns")
    if len(frame) == 0:
        raise UserError(f"{path}: has a header but no data rows; add rows below the header")
    frame.columns = [str(c) for c in frame.columns]
    frame = frame.reset_index(drop=True)
    log.info("read %s: %d rows x %d columns", path, len(frame), frame.shape[1])
    return Table(frame, str(path))


SPLIT_NAMES = ("train", "val", "test")


def read_split_json(path: Path) -> Loaded | None:
    """A JSON object of splits, each a list of [text, label] pairs (the layout of CLINC150's
    data_full.json): train, and the official val and test; other keys (CLINC's oos_* out-of-
    scope sets) are left out. None when the file is not in this layout."""

    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("train"), list):
        return None
    tables = {}
    for name in SPLIT_NAMES:
        rows = data.get(name)
        if rows is None:
            continue
        if not all(isinstance(r, list) and len(r) == 2 for r in rows):
            raise UserError(f"{path}: split {name!r} must be a list of [text, label] pairs")
        frame = pd.DataFrame(rows, columns=["text", "label"])
        tables[name] = Table(frame, f"{path}#{name}")
    skipped = sorted(set(data) - set(SPLIT_NAMES))
    log.info("read %s: %s%s", path, ", ".join(f"{k} {len(t)} rows" for k, t in tables.items()),
             f" (not used: {', '.join(skipped)})" if skipped else "")
    return Loaded(tables["train"], test=tables.get("test"), val=tables.get("val"), target="label",
                  kind="text")


def read_text(path: Path) -> str:
    """The file's text (gunzipped when it ends in .gz); not UTF-8 -> UserError with line and byte."""
    data = _read_bytes(path)
    if not data.strip():
        raise UserError(f"{path}: file is empty ({len(data)} bytes); give a file with a header and data rows")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        byte = data[exc.start : exc.start + 1].hex()
        raise UserError(
            f"{path}:{line}: not valid UTF-8 (byte 0x{byte} at offset {exc.start}); "
            "re-save the file as UTF-8"
        ) from None


def _read_bytes(path: Path) -> bytes:
    try:
        if path.name.lower().endswith(".gz"):
            with gzip.open(path, "rb") as fh:
                return fh.read()
        return path.read_bytes()
    except (OSError, EOFError) as exc:
        raise UserError(f"{path}: cannot read the file ({exc}); check that it is complete") from None


def _separator(path: Path) -> str:
    name = path.name.lower().removesuffix(".gz")
    return "\t" if name.endswith(".tsv") else ","


def _read_csv(path: Path, text: str) -> pd.DataFrame:
    sep = _separator(path)
    _check_field_counts(path, text, sep)
    try:
        return pd.read_csv(io.StringIO(text), sep=sep, on_bad_lines="error")
    except pd.errors.EmptyDataError:
        raise UserError(f"{path}: file is empty; give a file with a header and data rows") from None
    except pd.errors.ParserError as exc:
        match = re.search(r"line (\d+)", str(exc))
        where = f"{path}:{match.group(1)}" if match else str(path)
        raise UserError(f"{where}: cannot parse CSV ({_first_line(exc)}); fix that row") from None


def _check_field_counts(path: Path, text: str, sep: str) -> None:
    """Every row must have as many fields as the header (pandas pads short rows silently)."""
    reader = csv.reader(io.StringIO(text), delimiter=sep)
    try:
        header = next(reader, None)
        if header is None:
            return
        width, start = len(header), reader.line_num + 1
        for row in reader:
            if row and len(row) != width:
                spans = reader.line_num > start or any("\n" in field for field in row)
                hint = "a quote opened on this line is never closed" if spans else (
                    f"quote fields that contain {sep!r}")
                raise UserError(
                    f"{path}:{start}: expected {width} fields (as in the header) "
                    f"but found {len(row)}; fix that row ({hint})"
                )
            start = reader.line_num + 1
    except csv.Error as exc:
        raise UserError(f"{path}:{reader.line_num}: cannot parse CSV ({exc}); fix that row") from None


def _read_json_records(path: Path, text: str) -> pd.DataFrame:
    """JSON Lines (one object per line), or for .json a JSON array of objects / dict of columns."""
    is_json = path.name.lower().removesuffix(".gz").endswith(".json")
    if text.lstrip().startswith("[") or (is_json and not _looks_like_jsonl(text)):
        return _read_json_document(path, text)
    records = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(
                f"{path}:{lineno}: not valid JSON ({exc.msg} at column {exc.colno}); "
                "each line must be one JSON object"
            ) from None
        _check_record(path, rec, f"line {lineno}", f"{path}:{lineno}")
        records.append(rec)
    return pd.DataFrame.from_records(records)


def _looks_like_jsonl(text: str) -> bool:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return len(lines) > 1 and all(line.startswith("{") and line.endswith("}") for line in lines[:2])


def _read_json_document(path: Path, text: str) -> pd.DataFrame:
    """A whole-file JSON array of records, or an object whose values are equal-length columns."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg} at column {exc.colno}); fix the file") from None
    if isinstance(doc, dict):
        lengths = {len(v) if isinstance(v, list) else -1 for v in doc.values()}
        if len(lengths) != 1 or -1 in lengths:
            raise UserError(
                f"{path}: holds one JSON object (keys: {', '.join(list(doc)[:8])}), not records; "
                "give a JSON array of records or JSON Lines (one object per line)"
            )
        return pd.DataFrame(doc)
    if not isinstance(doc, list):
        raise UserError(f"{path}: holds a JSON {type(doc).__name__}; give a JSON array of records")
    for i, rec in enumerate(doc):
        _check_record(path, rec, f"record {i}")
    return pd.DataFrame.from_records(doc)


def _check_record(path: Path, rec: Any, what: str, where: str | None = None) -> None:
    if not isinstance(rec, dict):
        raise UserError(
            f"{where or path}: {what} is a JSON {type(rec).__name__}, not an object; "
            'write one object per record, like {"text": "...", "label": "..."}'
        )


def _read_parquet(path: Path) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.stat().st_size == 0:
        raise UserError(f"{path}: file is empty (0 bytes); give a Parquet file with data rows")
    try:
        return pq.read_table(path).to_pandas()
    except (pa.ArrowException, OSError) as exc:
        raise UserError(f"{path}: not a readable Parquet file ({_first_line(exc)}); re-export it") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__
