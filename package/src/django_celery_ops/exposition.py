"""The Prometheus text format (0.0.4), written in chunks, and the one HTTP handler that serves it.

prometheus_client's generate_latest builds the whole body in memory and costs about 8.5 µs per
series; the metrics processes serve up to millions of series. Here the slot reader hands over
blocks whose line prefixes (`name{labels} `) were rendered once, when its plan was built, so a
scrape only formats the values; the families of ordinary collectors (prometheus_client Metric
objects) are rendered as generate_latest does. The body is produced in chunks of a few
thousand lines (memory bounded whatever the series count), gzip-compressed when the scraper
asks. Output is byte-for-byte generate_latest's for the same samples: floatToGoString values,
labels sorted by name, escaped label values and HELP text.
"""
from __future__ import annotations

import logging
import math
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler

from prometheus_client.utils import floatToGoString

log = logging.getLogger("django_celery_ops.exposition")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
CHUNK_LINES = 2048  # lines rendered per chunk: about 200 kB of text, whatever the series count
GZIP_LEVEL = 1  # a scrape's text compresses about 10x at level 1; level 9 costs 5x the CPU for ~15% less

_MINUS_INF = -math.inf
_LEGACY_METRIC = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LEGACY_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_TYPES = {"counter": "counter", "gauge": "gauge", "histogram": "histogram", "summary": "summary",
          "info": "gauge", "stateset": "gauge", "gaugehistogram": "histogram", "unknown": "untyped",
          "untyped": "untyped"}


class Block:
    """One family's lines: a rendered header, then `prefixes[i] + value(values[i])` per series."""

    __slots__ = ("header", "prefixes", "values")

    def __init__(self, header: str, prefixes: list[str], values: list[float]):
        self.header, self.prefixes, self.values = header, prefixes, values


# prometheus_client's own: its output changed between versions (0.21 writes 1e+015, 0.22 on 1e+15),
# and the values it is called for here (infinities, NaN, >= 1e6) are the rare ones.
float_to_go = floatToGoString


def format_values(values: list[float]) -> list[str]:
    """float_to_go over floats, at the speed of repr: only infinities, NaN and values >= 1e6 differ."""
    out = list(map(repr, values))
    for i in [i for i, v in enumerate(values) if not _MINUS_INF < v < 1e6]:
        out[i] = float_to_go(values[i])
    return out


_metric_names: dict[str, str] = {}


def metric_name(name: str) -> str:
    """A metric name as written (generate_latest's default underscore escaping of non-legacy names)."""
    escaped = _metric_names.get(name)
    if escaped is None:
        escaped = _escape_metric_name(name)
        if len(_metric_names) < 10000:
            _metric_names[name] = escaped
    return escaped


def _escape_metric_name(name: str) -> str:
    if _LEGACY_METRIC.match(name):
        return name
    return "".join(c if c.isascii() and (c.isalpha() or c in "_:" or (i and c.isdigit())) else "_"
                   for i, c in enumerate(name))


def label_name(name: str) -> str:
    if _LEGACY_LABEL.match(name):
        return name
    return "".join(c if c.isascii() and (c.isalpha() or c == "_" or (i and c.isdigit())) else "_"
                   for i, c in enumerate(name))


def label_value(value: str) -> str:
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return value


_label_names: dict[str, str] = {}


def prefix(name: str, labels: Iterable[tuple[str, str]], ordered: bool = False) -> str:
    """`name{a="x",b="y"} ` with the labels sorted by name (`ordered`: they are), as a sample line starts."""
    items = labels if ordered else sorted(labels)
    if not items:
        return f"{metric_name(name)} "
    return f"{metric_name(name)}{{{','.join(label_pairs(items))}}} "


def label_pairs(items: Iterable[tuple[str, str]]) -> list[str]:
    """`name="value"` of each label, escaped, in the order given."""
    names, parts = _label_names, []
    for k, v in items:
        escaped = names.get(k)
        if escaped is None:
            escaped = label_name(k)
            if len(names) < 10000:
                names[k] = escaped
        parts.append(f'{escaped}="{label_value(v)}"')
    return parts


def header(name: str, documentation: str, typ: str) -> str:
    """The HELP and TYPE lines of a family, its name munged as generate_latest does (counter: _total)."""
    if typ == "counter":
        name += "_total"
    elif typ == "info":
        name += "_info"
    name = metric_name(name)
    doc = documentation.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {name} {doc}\n# TYPE {name} {_TYPES.get(typ, typ)}\n"


def _family_text(metric) -> str:
    """One prometheus_client Metric, exactly as generate_latest renders it."""
    out = [header(metric.name, metric.documentation, metric.type)]
    extra: dict[str, list[str]] = {}
    for s in metric.samples:
        line = prefix(s.name, s.labels.items()) + float_to_go(s.value)
        if s.timestamp is not None:
            line += f" {int(float(s.timestamp) * 1000):d}"
        for suffix in ("_created", "_gsum", "_gcount"):
            if s.name == metric.name + suffix:
                extra.setdefault(suffix, []).append(line)
                break
        else:
            out.append(line + "\n")
    for suffix, lines in sorted(extra.items()):
        out.append(header(metric.name + suffix, metric.documentation, "gauge"))
        out.extend(line + "\n" for line in lines)
    return "".join(out)


def _block_chunks(block: Block, first: str) -> Iterator[str]:
    prefixes, values = block.prefixes, block.values
    for start in range(0, len(prefixes), CHUNK_LINES):
        stop = start + CHUNK_LINES
        text = "\n".join(map(str.__add__, prefixes[start:stop], format_values(values[start:stop])))
        yield f"{first}{text}\n" if start == 0 else text + "\n"


def chunks(collected: Iterable) -> Iterator[bytes]:
    """The text format, in chunks of bytes, of Blocks and prometheus_client Metric families in order."""
    pending: list[str] = []
    size = 0
    for item in collected:
        if isinstance(item, Block):  # a family without samples still has its HELP and TYPE, as in generate_latest
            parts = _block_chunks(item, item.header) if item.prefixes else (item.header,)
        else:
            parts = (_family_text(item),)
        for part in parts:
            pending.append(part)
            size += len(part)
            if size >= 1 << 16:
                yield "".join(pending).encode()
                pending, size = [], 0
    if pending:
        yield "".join(pending).encode()


def gzipped(parts: Iterable[bytes], level: int = GZIP_LEVEL) -> Iterator[bytes]:
    """The gzip stream (RFC 1952) of the parts, as it is produced."""
    z = zlib.compressobj(level, zlib.DEFLATED, 31)
    for part in parts:
        out = z.compress(part)
        if out:
            yield out
    yield z.flush()


def collect(collectors: Iterable) -> list:
    """Every collector's items in order (Blocks from a SlotReader, Metric families from the others)."""
    return [item for collector in collectors for item in collector.collect()]


def generate(collectors: Iterable) -> bytes:
    """The whole body at once (for tests and small outputs; a server streams with write)."""
    return b"".join(chunks(collect(collectors)))


def accepts_gzip(accept_encoding: str | None) -> bool:
    for coding in (accept_encoding or "").split(","):
        name, _, params = coding.partition(";")
        if name.strip().lower() in ("gzip", "x-gzip"):
            q = params.strip().replace(" ", "")
            return not (q.startswith("q=") and _is_zero(q[2:]))
    return False


def _is_zero(q: str) -> bool:
    try:
        return float(q) == 0
    except ValueError:
        return False


def write(out, collectors: Iterable, gzip: bool = False) -> int:
    """Collect now, then stream the text format to `out` (a file-like object); returns the bytes written."""
    parts = chunks(collect(collectors))
    written = 0
    for part in gzipped(parts) if gzip else parts:
        out.write(part)
        written += len(part)
    return written


def make_handler(collectors: Callable[[], Iterable], metrics_paths: tuple[str, ...] = ("/metrics",),
                 health: Callable[[], tuple[bool, str]] | None = None) -> type[BaseHTTPRequestHandler]:
    """An HTTP handler serving /metrics (streamed, gzip when accepted), and /health when `health` is given.

    The body is collected before the status line is sent (a collect error answers 500) and then
    streamed; HTTP/1.0, so the end of the body is the end of the connection. Each request collects
    on its own (readers lock their own state), so concurrent scrapes of an HA pair see exact output.
    """
    health_paths = ("/health", "/healthz") if health else ()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            path = self.path.split("?", 1)[0]
            if path in metrics_paths:
                self._metrics()
            elif path in health_paths:
                ok, reason = health()
                self._plain(200 if ok else 503, reason + "\n")
            else:
                self._plain(404, "not found: try /metrics" + (" or /health" if health else "") + "\n")

        def _metrics(self):
            try:
                collected = collect(collectors())
            except Exception as exc:  # noqa: BLE001 - the scrape fails, the server lives
                log.exception("collect failed")
                self._plain(500, f"collect failed: {type(exc).__name__}: {exc}\n")
                return
            gzip = accepts_gzip(self.headers.get("Accept-Encoding"))
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            if gzip:
                self.send_header("Content-Encoding", "gzip")
            self.send_header("Connection", "close")
            self.end_headers()
            parts = chunks(collected)
            try:
                for part in gzipped(parts) if gzip else parts:
                    self.wfile.write(part)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the scraper gave up (its scrape_timeout): nothing to answer

        def _plain(self, status: int, text: str):
            body = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args):
            pass

    return Handler


class Families:
    """prometheus_client families of collectors that yield Blocks (a slow path, for registries and tests)."""

    def __init__(self, collectors: Iterable):
        self._collectors = list(collectors)

    def collect(self):
        from prometheus_client.parser import text_string_to_metric_families

        return list(text_string_to_metric_families(generate(self._collectors).decode()))


__all__ = ["CONTENT_TYPE", "Block", "Families", "accepts_gzip", "chunks", "collect", "float_to_go",
           "format_values", "generate", "gzipped", "header", "label_pairs", "make_handler", "prefix", "write"]
