import io
from pathlib import Path

import pytest

from app.jobs import csvfiles
from app.jobs.errors import InvalidUpload

FIXTURES = Path(__file__).parent.parent / "fixtures"


def _open(name):
    return io.BytesIO((FIXTURES / name).read_bytes())


def test_summary_gives_numeric_stats_and_text_top_values():
    summary = csvfiles.summarize(_open("weather.csv"), max_rows=100)
    assert summary["rows"] == 4
    city, temp, notes = summary["columns"]
    assert temp == {"name": "temp", "count": 4, "empty": 0, "distinct_at_least": 4, "type": "number",
                    "min": 2.0, "max": 30.5, "mean": 13.5, "sum": 54.0}
    assert city["type"] == "text" and city["top"][0] == ["Oslo", 2]
    assert notes["empty"] == 1


@pytest.mark.parametrize("name, reason", [
    ("empty.csv", "the file is empty"),
    ("header_only.csv", "the file has a header but no data rows"),
    ("short_row.csv", "row 3 has 2 fields, the header has 3"),
    ("image.png", "not a CSV file: it contains binary data"),
    ("bad_quote.csv", "malformed CSV"),
])
def test_validate_names_the_reason(name, reason):
    with pytest.raises(InvalidUpload) as info:
        csvfiles.validate(_open(name), max_rows=100)
    assert reason in str(info.value)


def test_validate_rejects_files_over_the_row_limit():
    with pytest.raises(InvalidUpload, match="more than 3 rows"):
        csvfiles.validate(_open("weather.csv"), max_rows=3)


def test_latin1_text_is_rejected_as_not_utf8():
    with pytest.raises(InvalidUpload, match="not UTF-8"):
        csvfiles.validate(io.BytesIO("name\ncaf\xe9\n".encode("latin-1") * 3), max_rows=100)


def test_validate_counts_rows_and_rewinds():
    stream = _open("weather.csv")
    assert csvfiles.validate(stream, max_rows=100) == 4
    assert stream.tell() == 0
