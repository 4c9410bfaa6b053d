"""X-Request-Start in every common format gives the queue time; anything else gives no sample."""
import pytest

from django_celery_ops.queue_time import parse_request_start, queue_seconds

NOW = 1_700_000_000.250


@pytest.mark.parametrize("header", [
    "t=1700000000.000",          # nginx: t=${msec}
    "1700000000.000",            # seconds, no prefix
    "t=1700000000000",           # milliseconds
    "1700000000000",
    "t=1700000000000000",        # microseconds (e.g. Apache's %t / New Relic)
    "1700000000000000",
    "  t=1700000000000  ",
    "T=1700000000.0",
])
def test_request_start_in_seconds_milliseconds_or_microseconds_gives_the_wait(header):
    assert queue_seconds(header, now=NOW) == pytest.approx(0.25, abs=1e-6)


@pytest.mark.parametrize("header", [
    None, "", "t=", "garbage", "t=abc", "t=-1700000000", "t=1.7e9", "nan", "inf", "t=1700000000,5",
    "t=1700000000.0.0", "1" * 30,
    "t=²", "t=1700000000²", "t=١٧٠٠٠٠٠٠٠٠", "t=１７００００００００",  # Unicode digits pass str.isdigit(), not float()
])
def test_absent_or_unparsable_header_gives_no_sample(header):
    assert queue_seconds(header, now=NOW) is None


def test_a_start_in_the_future_gives_no_sample():
    assert queue_seconds("t=1700000010.000", now=NOW) is None


def test_an_absurd_wait_gives_no_sample():
    assert queue_seconds("t=1600000000.000", now=NOW) is None  # years ago: a wrong unit or clock
    assert queue_seconds("t=1", now=NOW) is None


def test_parse_keeps_sub_millisecond_precision_of_microseconds():
    assert parse_request_start("1700000000123456") == pytest.approx(1700000000.123456, abs=1e-6)
