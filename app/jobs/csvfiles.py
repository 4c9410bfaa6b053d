"""Validate a CSV upload and summarise it, column by column."""
import csv
import io
import math
from collections import Counter
from collections.abc import Callable, Iterator
from typing import BinaryIO

from app.jobs.errors import InvalidUpload

_SNIFF_BYTES = 8192
_TOP_VALUES = 5


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


def iter_records(stream: BinaryIO, max_rows: int) -> Iterator[tuple[list[str], list[str]]]:
    """Yield (header, row) for each data row; raise InvalidUpload with the reason on bad input."""
    _check_head(stream)
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    try:
        rows = csv.reader(text, strict=True)
        header = next(rows, None)
        if not header or not any(cell.strip() for cell in header):
            raise InvalidUpload("the file has no header row")
        if len(set(header)) != len(header):
            raise InvalidUpload("the header repeats a column name")
        count = 0
        for row in rows:
            if not row:
                continue  # blank lines carry no record
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
    finally:
        text.detach()  # the caller owns the binary stream: do not close it with the wrapper


def validate(stream: BinaryIO, max_rows: int) -> int:
    """Check the whole file cheaply; return its number of data rows."""
    count = 0
    header = None
    for header, _row in iter_records(stream, max_rows):
        count += 1
    stream.seek(0)
    if header is None:
        raise InvalidUpload("the file has a header but no data rows")
    return count


class _Column:
    def __init__(self, name: str):
        self.name = name
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
        if len(self.values) < 10_000 or cell in self.values:  # bound memory on unique columns
            self.values[cell] += 1

    def summary(self) -> dict:
        filled = self.count - self.empty
        out = {"name": self.name, "count": self.count, "empty": self.empty, "distinct_at_least": len(self.values)}
        if filled and self.numeric == filled:
            out.update(type="number", min=self.minimum, max=self.maximum, mean=self.total / self.numeric,
                       sum=self.total)
        else:
            out.update(type="text", top=[[v, n] for v, n in self.values.most_common(_TOP_VALUES)])
        return out


def summarize(stream: BinaryIO, max_rows: int, total_rows: int = 0,
              progress: Callable[[int], None] | None = None) -> dict:
    """Return {"rows": N, "columns": [...]}: per column counts, and min/max/mean when numeric."""
    columns: list[_Column] = []
    rows = 0
    for header, row in iter_records(stream, max_rows):
        if not columns:
            columns = [_Column(name) for name in header]
        for column, cell in zip(columns, row):
            column.add(cell)
        rows += 1
        if progress and total_rows and rows % 1000 == 0:
            progress(min(99, rows * 100 // total_rows))
    if not rows:
        raise InvalidUpload("the file has a header but no data rows")
    return {"rows": rows, "columns": [c.summary() for c in columns]}
