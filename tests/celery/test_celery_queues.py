"""Redis queue keys: one list per priority step, with kombu's separator."""
from types import SimpleNamespace

from django_celery_ops.celery_queues import redis_keys


def test_redis_keys_cover_every_priority_step():
    channel = SimpleNamespace(priority_steps=[0, 3, 6, 9], sep="\x06\x16")
    assert redis_keys(channel, "default") == ["default", "default\x06\x163", "default\x06\x166", "default\x06\x169"]


def test_redis_keys_follow_custom_steps_and_separator():
    channel = SimpleNamespace(priority_steps=list(range(10)), sep=":")
    assert redis_keys(channel, "q")[:3] == ["q", "q:1", "q:2"] and len(redis_keys(channel, "q")) == 10
