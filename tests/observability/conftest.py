"""Real web tiers (gunicorn + metrics server) on free loopback ports, stopped after each test."""
import pytest

from tests.support import stack, web


@pytest.fixture
def migrated_env(var_dir):
    """Migrate the tier's database once (the DB views need tables)."""
    env = stack.app_env(var_dir, "redis://127.0.0.1:1/0")
    stack.migrate(env)
    return env


@pytest.fixture
def start_tier(var_dir, procs):
    def start(**kwargs) -> web.Tier:
        return web.start_tier(procs, var_dir, **kwargs)
    return start
