"""CSV uploads built in code for the jobs tests: valid rows of a given size, and a poison file."""
from app.jobs import csvfiles


def good_rows(nbytes: int) -> bytes:
    """A valid 3-column CSV of at least nbytes."""
    rows = [b"id,value,label"]
    size = 0
    i = 0
    while size < nbytes:
        row = b"%d,%d.5,item%d" % (i, i, i % 7)
        rows.append(row)
        size += len(row) + 1
        i += 1
    return b"\n".join(rows) + b"\n"


def poison_csv() -> bytes:
    """Well-formed within the request's prefix, a short row after it: fails in the task every time."""
    return good_rows(csvfiles.PREFIX_BYTES + 1000) + b"1,2\n"
