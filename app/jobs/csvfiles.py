"""Check a CSV upload cheaply at request time, and parse and summarise it in full in the task.

The request-time check (validate) costs milliseconds for any file within the upload limit: byte
scans run in C over 1 MiB chunks, and the csv module parses only the first PREFIX_BYTES. The task
(summarize) parses everything, with the same limits enforced while it streams. docs/jobs.md
lists which check runs where.
"""
import codecs
import csv
import io
import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO

from app.jobs.errors import InvalidUpload

PREFIX_BYTES = 64 * 1024  # the part of the file the request parses as CSV
_CHUNK = 1024 * 1024
_SNIFF_BYTES = 8192
_TOP_VALUES = 5
_DISTINCT_BUDGET = 200_000  # distinct values remembered across all columns (memory bound)
_DISTINCT_PER_COLUMN = 10_000
_TEXT_CHARS = 100  # longest name or value copied into a summary


def _check_head(stream: BinaryIO) -> None:
    head = stream.read(_SNIFF_BYTES)
    stream.seek(0)
    if not head.strip():
        raise InvalidUpload("the file is empty")
    if b"\x00" in head:
        raise InvalidUpload("not a CSV file: it contains binary data")
    try:
        head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # A multi-byte character may be cut at the sniff boundary; only fail early on clear garbage.
        if exc.start < len(head) - 4:
            raise InvalidUpload("not a CSV file: it is not UTF-8 text") from None


class _Width:
    """Count the fields of one record fed in pieces without building it (commas outside quotes)."""

    def __init__(self, quoted: bool = False):
        self.fields, self.quoted, self.ended = 1, quoted, False

    def feed(self, piece) -> None:
        quote, comma, lf, cr = ('"', ",", "\n", "\r") if isinstance(piece, str) else (b'"', b",", b"\n", b"\r")
        for i, part in enumerate(piece.split(quote)):
            if i:
                self.quoted = not self.quoted
            if not self.quoted:
                end = min((at for at in (part.find(lf), part.find(cr)) if at >= 0), default=-1)
                if end >= 0:
                    self.fields += part.count(comma, 0, end)
                    self.ended = True
                    return
                self.fields += part.count(comma)


def _too_wide(fields: int, max_columns: int, where: str) -> InvalidUpload:
    return InvalidUpload(f"{where} has {fields} or more fields, the limit is {max_columns} columns")


def _count_lines(chunk: bytes) -> int:
    # \n and \r\n end a line, and so does a lone \r (the csv module accepts all three)
    return chunk.count(b"\n") + chunk.count(b"\r") - chunk.count(b"\r\n")


def validate(stream: BinaryIO, max_rows: int, max_lines: int = 1_000_001, max_columns: int = 1000) -> int:
    """Check the upload cheaply; return its line count less the header (the task's progress scale).

    Whole file, by byte scans: UTF-8, no NUL byte, at most max_lines lines (blank lines count),
    a header of at most max_columns fields. First PREFIX_BYTES, parsed as CSV: header present
    with unique names, rows as wide as the header, well-formed quoting, and a data row when the
    whole file fits in the prefix. The rest is checked by summarize, in the task.
    """
    _check_head(stream)
    decoder = codecs.getincrementaldecoder("utf-8")()
    header = _Width()
    lines = 0
    last = b""
    while chunk := stream.read(_CHUNK):
        if b"\x00" in chunk:
            raise InvalidUpload("not a CSV file: it contains binary data")
        try:
            decoder.decode(chunk)
        except UnicodeDecodeError:
            raise InvalidUpload("not a CSV file: it is not UTF-8 text") from None
        lines += _count_lines(chunk)
        last = chunk[-1:]
        if lines > max_lines:
            raise InvalidUpload(f"the file has more than {max_lines} lines (blank lines count), "
                                f"the limit is {max_lines}")
        if not header.ended:
            header.feed(chunk)
            if header.fields > max_columns:
                raise _too_wide(header.fields, max_columns, "the header")
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise InvalidUpload("not a CSV file: it is not UTF-8 text") from None
    if last not in (b"\n", b"\r"):
        lines += 1  # the last line has no line break
    stream.seek(0)
    _check_prefix(stream, max_rows)
    stream.seek(0)
    return max(1, lines - 1)


def _check_prefix(stream: BinaryIO, max_rows: int) -> None:
    prefix = stream.read(PREFIX_BYTES + 1)
    truncated = len(prefix) > PREFIX_BYTES
    if truncated:
        cut = max(prefix.rfind(b"\n", 0, PREFIX_BYTES), prefix.rfind(b"\r", 0, PREFIX_BYTES))
        if cut < 0:
            return  # one line longer than the prefix: the task parses it
        prefix = prefix[:cut + 1]
    lines = io.StringIO(prefix.decode("utf-8-sig"), newline="").readlines()
    fed = _Fed(lines)
    try:
        header = None
        for header, _row in _records(csv.reader(fed, strict=True), max_rows):
            pass
    except InvalidUpload as exc:
        if truncated and fed.done and "malformed CSV" in str(exc):
            return  # a quoted field runs past the prefix: the task parses it
        raise
    if header is None and not truncated:
        raise InvalidUpload("the file has a header but no data rows")


class _Fed:
    """An iterator over lines that knows when the last one was taken."""

    def __init__(self, lines: list[str]):
        self._lines, self._next = lines, 0

    def __iter__(self):
        return self

    def __next__(self) -> str:
        if self._next >= len(self._lines):
            raise StopIteration
        self._next += 1
        return self._lines[self._next - 1]

    @property
    def done(self) -> bool:
        return self._next >= len(self._lines)


def _guarded(lines: Iterable[str], max_lines: int, max_columns: int) -> Iterator[str]:
    """Pass lines on to the csv reader, refusing too many lines or a record too wide to build."""
    width = _Width()
    for number, line in enumerate(lines, 1):
        if number > max_lines:
            raise InvalidUpload(f"the file has more than {max_lines} lines (blank lines count), "
                                f"the limit is {max_lines}")
        if width.ended or number == 1:
            width = _Width()
        if width.quoted or line.count(",") >= max_columns or '"' in line:
            width.feed(line if line.endswith(("\n", "\r")) else line + "\n")  # the last line may have no break
            if width.fields > max_columns:
                raise _too_wide(width.fields, max_columns, f"line {number}")
        else:
            width.ended = True  # no quote, few commas: a whole record within the limit
        yield line


def _records(rows, max_rows: int) -> Iterator[tuple[list[str], list[str]]]:
    try:
        header = next(rows, None)
        if not header or not any(cell.strip() for cell in header):
            raise InvalidUpload("the file has no header row")
        if len(set(header)) != len(header):
            raise InvalidUpload("the header repeats a column name")
        count = 0
        for row in rows:
            if not row:
                continue  # blank lines carry no record (they count towards the line limit)
            if len(row) != len(header):
                raise InvalidUpload(f"row {rows.line_num} has {len(row)} fields, the header has {len(header)}")
            count += 1
            if count > max_rows:
                raise InvalidUpload(f"more than {max_rows} rows")
            yield header, row
    except UnicodeDecodeError:
        raise InvalidUpload("not a CSV file: it is not UTF-8 text") from None
    except csv.Error as exc:
        raise InvalidUpload(f"malformed CSV: {exc}") from None


def iter_records(stream: BinaryIO, max_rows: int, max_lines: int = 1_000_001,
                 max_columns: int = 1000) -> Iterator[tuple[list[str], list[str]]]:
    """Yield (header, row) for each data row of the whole file; raise InvalidUpload with the reason."""
    _check_head(stream)
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    try:
        yield from _records(csv.reader(_guarded(text, max_lines, max_columns), strict=True), max_rows)
    except UnicodeDecodeError:
        raise InvalidUpload("not a CSV file: it is not UTF-8 text") from None
    finally:
        text.detach()  # the caller owns the binary stream: do not close it with the wrapper


def _clip(text: str) -> str:
    return text if len(text) <= _TEXT_CHARS else text[:_TEXT_CHARS] + "…"


class _Column:
    def __init__(self, name: str, distinct_limit: int):
        self.name = name
        self.distinct_limit = distinct_limit
        self.count = self.empty = self.numeric = 0
        self.total = 0.0
        self.minimum = math.inf
        self.maximum = -math.inf
        self.values: Counter[str] = Counter()

    def add(self, cell: str) -> None:
        self.count += 1
        cell = cell.strip()
        if not cell:
            self.empty += 1
            return
        try:
            number = float(cell)
        except ValueError:
            number = None
        if number is not None and math.isfinite(number):
            self.numeric += 1
            self.total += number
            self.minimum = min(self.minimum, number)
            self.maximum = max(self.maximum, number)
        if len(self.values) < self.distinct_limit or cell in self.values:  # bound memory
            self.values[cell] += 1

    def summary(self) -> dict:
        filled = self.count - self.empty
        out = {"name": _clip(self.name), "count": self.count, "empty": self.empty,
               "distinct_at_least": len(self.values)}
        if filled and self.numeric == filled:
            out.update(type="number", min=self.minimum, max=self.maximum, mean=self.total / self.numeric,
                       sum=self.total)
        else:
            out.update(type="text", top=[[_clip(v), n] for v, n in self.values.most_common(_TOP_VALUES)])
        return out


def summarize(stream: BinaryIO, max_rows: int, total_rows: int = 0,
              progress: Callable[[int], None] | None = None, max_lines: int = 1_000_001,
              max_columns: int = 1000) -> dict:
    """Return {"rows": N, "columns": [...]}: per column counts, and min/max/mean when numeric."""
    columns: list[_Column] = []
    rows = 0
    for header, row in iter_records(stream, max_rows, max_lines, max_columns):
        if not columns:
            limit = max(10, min(_DISTINCT_PER_COLUMN, _DISTINCT_BUDGET // len(header)))
            columns = [_Column(name, limit) for name in header]
        for column, cell in zip(columns, row):
            column.add(cell)
        rows += 1
        if progress and total_rows and rows % 1000 == 0:
            progress(min(99, rows * 100 // total_rows))
    if not rows:
        raise InvalidUpload("the file has a header but no data rows")
    return {"rows": rows, "columns": [c.summary() for c in columns]}


def dumps(data) -> str:
    """Compact JSON (no indent: a wide summary must not grow by its whitespace)."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def bounded(summary: dict, max_bytes: int) -> dict:
    """The summary cut to at most max_bytes of compact JSON; dropped columns are named in a marker."""
    if len(dumps(summary).encode()) <= max_bytes:
        return summary
    columns = summary["columns"]
    out = {k: v for k, v in summary.items() if k != "columns"}
    marker = {"shown": 0, "total": len(columns),
              "reason": f"the stored summary is limited to {max_bytes} bytes; the result file has every column"}
    size = len(dumps({**out, "columns": [], "columns_truncated": marker}).encode()) + 16
    kept = []
    for column in columns:
        cost = len(dumps(column).encode()) + 1
        if size + cost > max_bytes:
            break
        kept.append(column)
        size += cost
    marker["shown"] = len(kept)
    return {**out, "columns": kept, "columns_truncated": marker}
