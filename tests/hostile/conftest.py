"""Both real web tiers with tokens on (tests/support/hostile.py), each with a Redis broker of its own."""
import pytest

from tests.support import stack
from tests.support.hostile import start_hostile_tier


@pytest.fixture(scope="module", params=["wsgi", "asgi"])
def hostile(request, tmp_path_factory):
    """A tier per param, with a Redis broker of its own (accepted jobs are published at once; no worker runs)."""
    redis, port = stack.start_redis(tmp_path_factory.mktemp(f"broker-{request.param}"))
    procs = [redis]
    try:
        tier, started = start_hostile_tier(tmp_path_factory, request.param, asgi=request.param == "asgi",
                                           broker_url=f"redis://127.0.0.1:{port}/0")
        procs += started
        yield tier
    finally:
        for proc in reversed(procs):
            proc.stop()
