"""The per-token rate limit is shared by every worker of both tiers (Redis) and answers 429."""
import pytest

from tests.support import stack
from tests.support.hostile import bearer, request, start_hostile_tier

pytestmark = pytest.mark.integration


@pytest.fixture
def two_tiers_one_redis(tmp_path_factory):
    var_dir = tmp_path_factory.mktemp("rate-redis")
    redis, port = stack.start_redis(var_dir)
    procs, tiers = [redis], []
    try:
        env = {"JOBS_API_RATE_LIMIT": "6/h", "JOBS_API_RATE_LIMIT_CACHE_URL": f"redis://127.0.0.1:{port}/3"}
        for name, asgi in (("rate-wsgi", False), ("rate-asgi", True)):
            tier, started = start_hostile_tier(tmp_path_factory, name, asgi=asgi, **env)
            procs += started
            tiers.append(tier)
        yield tiers
    finally:
        for proc in reversed(procs):
            proc.stop()


def test_a_tokens_rate_is_shared_across_workers_and_tiers_and_answers_429(two_tiers_one_redis):
    wsgi, asgi = two_tiers_one_redis
    answers = [(wsgi if i % 2 else asgi).send(request("GET", "/api/jobs/x/", bearer("alice"))) for i in range(10)]
    assert [a.status for a in answers] == [404] * 6 + [429] * 4  # 2 workers x 2 tiers, one window
    refused = answers[-1]
    assert refused.json()["rule"] == "rate_limit" and int(refused.headers["retry-after"]) >= 1
    assert wsgi.send(request("GET", "/api/jobs/x/", bearer("bob"))).status == 404  # per token
