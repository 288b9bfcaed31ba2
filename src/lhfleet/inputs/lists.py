"""Reading URL lists: plain lines, CSV with a URL column, or JSON.

Each reader returns ``SourceLine`` objects that remember where a URL came
from, so that every message can name the file and line. A structural
problem with one row or item (a CSV row without a URL, a JSON item of the
wrong type) becomes a line with ``problem`` set, and is reported and
skipped like an invalid URL.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from lhfleet.errors import InputTooLargeError, InvalidSettingError
from lhfleet.inputs.limits import InputLimits

logger = logging.getLogger(__name__)

FORMATS = ("auto", "lines", "csv", "json")
URL_COLUMNS = ("url", "urls", "link", "href", "loc", "address", "page")
LABEL_COLUMN = "label"
CSV_DELIMITERS = ",;\t"


@dataclass(frozen=True)
class SourceLine:
    """One URL as the user wrote it, where it came from, and what travels with it."""

    source: str
    line: int
    text: str
    label: str | None = None
    meta: dict[str, Any] | None = None
    unit: str = "line"
    """The unit of ``line``: ``line``, ``argument``, ``item``, ``entry`` or ``page``."""

    problem: str | None = None
    """The reason the row or item has no usable URL, found while reading it."""

    @property
    def where(self) -> str:
        """Return the place for messages, such as ``urls.txt:3``."""
        if self.unit == "line":
            return f"{self.source}:{self.line}"
        return f"{self.source} {self.unit} {self.line}"


def read_lines(source: str, lines: Iterable[str]) -> Iterator[SourceLine]:
    """Yield the non-blank, non-comment lines of a URL list, with line numbers.

    Handles CRLF line ends, a byte-order mark and surrounding whitespace.
    """
    for number, raw in enumerate(lines, start=1):
        text = raw.lstrip("\ufeff").strip() if number == 1 else raw.strip()
        if text and not text.startswith("#"):
            yield SourceLine(source, number, text)


def read_input(path: str, limits: InputLimits, stdin: BinaryIO) -> tuple[str, str]:
    """Return the display name and text of a URL list file, or of stdin for ``-``."""
    if path == "-":
        return "stdin", decode(_read_capped(stdin, "stdin", limits), "stdin")
    try:
        with Path(path).open("rb") as handle:
            data = _read_capped(handle, path, limits)
    except OSError as error:
        raise InvalidSettingError(
            f"Cannot read the URL list {path}: {error.strerror}."
        ) from error
    return path, decode(data, path)


def _read_capped(handle: BinaryIO, name: str, limits: InputLimits) -> bytes:
    data = handle.read(limits.max_input_bytes + 1)
    if len(data) > limits.max_input_bytes:
        raise InputTooLargeError(
            f"The URL list {name} is larger than {limits.max_input_bytes} bytes. "
            "Split it into several jobs."
        )
    return data


def decode(data: bytes, name: str) -> str:
    """Decode UTF-8 (with or without a BOM) or BOM-marked UTF-16 text."""
    encoding = "utf-16" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as error:
        raise InvalidSettingError(
            f"The URL list {name} is not UTF-8 text ({error.reason} at "
            f"byte {error.start}). Save it as UTF-8."
        ) from error


def detect_format(name: str, text: str) -> str:
    """Return ``lines``, ``csv`` or ``json`` from a file's extension or content."""
    suffix = Path(name).suffix.lower()
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix == ".json":
        return "json"
    start = text.lstrip("\ufeff \t\r\n")[:1]
    if start in ("[", "{"):
        return "json"
    first = next(read_lines(name, text.splitlines()), None)
    if first and _header_columns(first.text) & set(URL_COLUMNS):
        return "csv"
    return "lines"


def _header_columns(line: str) -> set[str]:
    for delimiter in CSV_DELIMITERS:
        if delimiter in line:
            return {cell.strip().strip('"').lower() for cell in line.split(delimiter)}
    return set()


def parse(name: str, text: str, input_format: str = "auto") -> list[SourceLine]:
    """Return the URL lines of a list in any supported format."""
    chosen = detect_format(name, text) if input_format == "auto" else input_format
    logger.debug("reading %s as %s", name, chosen)
    if chosen == "csv":
        return parse_csv(name, text)
    if chosen == "json":
        return parse_json(name, text)
    if chosen == "lines":
        return list(read_lines(name, text.splitlines()))
    raise InvalidSettingError(
        f"--input-format is {input_format!r}; use one of {', '.join(FORMATS)}."
    )


def parse_csv(name: str, text: str) -> list[SourceLine]:
    """Return one line per CSV row: its URL column, ``label``, the rest as meta."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")), _dialect(text))
    try:
        header = next(reader, [])
        columns = [cell.strip() for cell in header]
        url_column = _url_column(name, columns)
        return [
            _csv_row(name, reader.line_num, columns, url_column, row)
            for row in reader
            if any(cell.strip() for cell in row) and not row[0].startswith("#")
        ]
    except csv.Error as error:
        raise InvalidSettingError(
            f"The CSV file {name} cannot be read at line {reader.line_num}: {error}."
        ) from error


def _dialect(text: str) -> type[csv.Dialect]:
    sample = text.lstrip("\ufeff")[:4096]
    try:
        return csv.Sniffer().sniff(sample, delimiters=CSV_DELIMITERS)
    except csv.Error:
        return csv.excel


def _url_column(name: str, columns: list[str]) -> int:
    lowered = [column.lower() for column in columns]
    for candidate in URL_COLUMNS:
        if candidate in lowered:
            return lowered.index(candidate)
    raise InvalidSettingError(
        f"The CSV file {name} has no URL column; its header row has "
        f"{', '.join(repr(column) for column in columns) or 'no columns'}. "
        "Name the column of URLs 'url'."
    )


def _csv_row(
    name: str, number: int, columns: list[str], url_column: int, row: list[str]
) -> SourceLine:
    if len(row) > len(columns):
        problem = f"has {len(row)} cells but the header row has {len(columns)}"
        return SourceLine(name, number, ",".join(row)[:200], problem=problem)
    cells = dict(zip(columns, (cell.strip() for cell in row), strict=False))
    url = cells.pop(columns[url_column], "")
    label: str | None = None
    for column in list(cells):
        if column.lower() == LABEL_COLUMN:
            label = cells.pop(column) or None
    meta = {key: value for key, value in cells.items() if key and value}
    empty = None if url else "has an empty URL cell"
    return SourceLine(name, number, url, label, meta or None, "line", empty)


def parse_json(name: str, text: str) -> list[SourceLine]:
    """Return one line per item of a JSON list of URLs or of target objects."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidSettingError(
            f"The JSON file {name} is not valid JSON ({error.msg} at line "
            f"{error.lineno}, column {error.colno})."
        ) from error
    if not isinstance(data, list):
        raise InvalidSettingError(
            f"The JSON file {name} must hold a list of URLs or of objects such as "
            '{"url": "https://example.com/", "label": "home"}; '
            f"it holds a {type(data).__name__}."
        )
    return [_json_item(name, number, item) for number, item in enumerate(data, 1)]


def _json_item(name: str, number: int, item: Any) -> SourceLine:
    if isinstance(item, str):
        return SourceLine(name, number, item.strip(), unit="item")
    if not isinstance(item, dict):
        problem = f"is a {type(item).__name__}; use a URL or an object with a url"
        return SourceLine(
            name, number, json.dumps(item)[:200], unit="item", problem=problem
        )
    url, label, meta = item.get("url"), item.get("label"), item.get("meta")
    wrong = _json_item_problem(url, label, meta)
    if wrong or not isinstance(url, str):
        excerpt = json.dumps(item)[:200]
        return SourceLine(name, number, excerpt, unit="item", problem=wrong)
    rest = {key: value for key, value in item.items() if key not in _JSON_KEYS}
    merged = {**rest, **(meta or {})}
    return SourceLine(name, number, url.strip(), label, merged or None, "item")


_JSON_KEYS = ("url", "label", "meta")


def _json_item_problem(url: Any, label: Any, meta: Any) -> str | None:
    if not isinstance(url, str) or not url.strip():
        return "has no url string"
    if label is not None and not isinstance(label, str):
        return "has a label that is not a string"
    if meta is not None and not isinstance(meta, dict):
        return "has a meta that is not an object"
    return None
