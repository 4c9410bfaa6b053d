"""The streamed text format is generate_latest's, byte for byte, in chunks and gzipped."""
import gzip
import io
import math
import random
import struct

import pytest
from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Histogram, Info, Summary, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.utils import floatToGoString

from django_celery_ops import exposition


def _floats():
    rnd = random.Random(0)
    special = [0.0, -0.0, 1.0, -1.0, 0.1, 1e6, 999999.0, 1000000.5, 1234567.0, 1e-7, 5e-324, 1.7976931348623157e308,
               -1e6, -1234567.0, 1e15, 1e16, 1e17, 123456789012345678.0, 2.5e7, math.inf, -math.inf, math.nan]
    randoms = [struct.unpack("<d", rnd.getrandbits(64).to_bytes(8, "little"))[0] for _ in range(2000)]
    return special + randoms + [rnd.randint(0, 10 ** 9) / rnd.choice([1, 4, 10, 1000]) for _ in range(2000)]


def test_values_are_written_as_float_to_go_string_writes_them():
    values = _floats()
    assert exposition.format_values(values) == [floatToGoString(v) for v in values]
    assert [exposition.float_to_go(v) for v in values] == [floatToGoString(v) for v in values]
    assert exposition.float_to_go(3) == floatToGoString(3)


def _registry():
    registry = CollectorRegistry()
    odd = ['plain', 'quote"d', 'back\\slash', 'new\nline', 'ünïcode', '']
    c = Counter("jobs", 'Jobs done, with "quotes", a \\ and a\nnewline.', ["kind", "queue"], registry=registry)
    g = Gauge("depth", "Depth.", ["queue"], registry=registry)
    h = Histogram("latency_seconds", "Latency.", ["view"], buckets=(0.005, 0.1, 1.0, 2.5e7), registry=registry)
    s = Summary("size_bytes", "Size.", registry=registry)
    Info("build", "Build.", registry=registry).info({"version": "1.2", "commit": 'ab"c'})
    Enum("state", "State.", states=["a", "b"], registry=registry).state("b")
    for i, value in enumerate(odd):
        c.labels(value, f"q{i}").inc(i * 1.5)
        g.labels(value).set(-i * 1e6)
        h.labels(value).observe(i / 8)
        s.observe(i * 1234567)
    g.labels("inf").set(math.inf)
    g.labels("nan").set(math.nan)
    return registry


def test_families_of_ordinary_collectors_render_as_generate_latest_does():
    registry = _registry()
    assert exposition.generate([registry]) == generate_latest(registry)


def test_a_family_with_timestamps_renders_as_generate_latest_does():
    family = GaugeMetricFamily("stamped", "With timestamps.", labels=["a"])
    family.add_metric(["x"], 1, timestamp=1700000000.123)
    family.add_metric(["y"], 2.5, timestamp=12)

    class Collector:
        def collect(self):
            yield family

    registry = CollectorRegistry()
    registry.register(Collector())
    assert exposition.generate([Collector()]) == generate_latest(registry)


def test_blocks_stream_in_bounded_chunks_that_join_to_the_whole_text():
    n = exposition.CHUNK_LINES * 3 + 5
    prefixes = [exposition.prefix("many_total", [("i", str(i)), ("a", 'x"y')]) for i in range(n)]
    values = [i / 4 for i in range(n)]
    block = exposition.Block(exposition.header("many", "Many.", "counter"), prefixes, values)
    parts = list(exposition.chunks([block, exposition.Block(exposition.header("none", "", "gauge"), [], [])]))
    assert len(parts) >= 3 and max(map(len, parts)) < 400_000
    want = "# HELP many_total Many.\n# TYPE many_total counter\n" + "".join(
        f'many_total{{a="x\\"y",i="{i}"}} {floatToGoString(i / 4)}\n' for i in range(n)) + \
        "# HELP none \n# TYPE none gauge\n"
    assert b"".join(parts).decode() == want


def test_gzip_output_decompresses_to_the_plain_text():
    registry = _registry()
    plain = exposition.generate([registry])
    out = io.BytesIO()
    written = exposition.write(out, [registry], gzip=True)
    assert written == len(out.getvalue())
    assert gzip.decompress(out.getvalue()) == plain


@pytest.mark.parametrize("header, wanted", [
    ("gzip", True), ("gzip, deflate, br", True), ("deflate, GZip;q=0.5", True), ("gzip;q=0", False),
    ("gzip; q=0.000", False), ("identity", False), ("", False), (None, False), ("x-gzip", True)])
def test_gzip_is_used_only_when_the_scraper_accepts_it(header, wanted):
    assert exposition.accepts_gzip(header) is wanted


def test_non_legacy_names_are_escaped_with_underscores():
    assert exposition.prefix("a.b-c", [("1x", "v")]) == 'a_b_c{_x="v"} '
    assert exposition.header("ok:name", "h", "untyped") == "# HELP ok:name h\n# TYPE ok:name untyped\n"
