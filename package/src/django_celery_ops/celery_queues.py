"""Queue length measured on the broker itself (Redis and RabbitMQ); a missing queue is empty.

Redis keeps a Celery queue as one list per priority step: `name` for priority 0 and
`name\\x06\\x163`, `name\\x06\\x166`, `name\\x06\\x169` for the others (kombu's defaults; `sep` and
`priority_steps` come from the transport options). celery-exporter reads only `name`, so
prioritised messages are invisible to it; here the lists are summed. kombu's client adds any
`global_keyprefix` itself. RabbitMQ answers a passive queue_declare with the ready messages and
the consumers; NOT_FOUND closes the channel, so each queue gets its own.
"""
from __future__ import annotations

from dataclasses import dataclass

from kombu.exceptions import ChannelError


@dataclass(frozen=True)
class QueueStats:
    length: int
    consumers: int | None  # None where the broker does not know (Redis)


def redis_keys(channel, queue: str) -> list[str]:
    """The Redis lists that hold `queue`'s messages, one per priority step."""
    steps = sorted(set(getattr(channel, "priority_steps", [0])))
    return [queue if step == 0 else f"{queue}{channel.sep}{step}" for step in steps]


def _redis(connection, queues: list[str]) -> dict[str, QueueStats]:
    channel = connection.default_channel
    keys = {queue: redis_keys(channel, queue) for queue in queues}
    with channel.client.pipeline(transaction=False) as pipe:
        for queue in queues:
            for key in keys[queue]:
                pipe.llen(key)
        sizes = iter(pipe.execute())
    return {queue: QueueStats(sum(int(next(sizes) or 0) for _ in keys[queue]), None) for queue in queues}


def _amqp(connection, queues: list[str]) -> dict[str, QueueStats]:
    result = {}
    for queue in queues:
        channel = connection.channel()
        try:
            ok = channel.queue_declare(queue=queue, passive=True)
            result[queue] = QueueStats(int(ok.message_count), int(ok.consumer_count))
        except ChannelError as exc:
            if "NOT_FOUND" not in str(exc) and getattr(exc, "code", None) != 404:
                raise
            result[queue] = QueueStats(0, 0)
        finally:
            try:
                channel.close()
            except Exception:  # noqa: BLE001, S110 - a channel the broker closed (404) is already gone
                pass
    return result


def measure(connection, queues: list[str]) -> dict[str, QueueStats]:
    """Length (and consumers where known) of each queue; raises on broker errors."""
    driver = connection.transport.driver_type
    if driver == "redis":
        return _redis(connection, queues)
    if driver == "amqp":
        return _amqp(connection, queues)
    raise ValueError(f"queue length is measured on Redis and RabbitMQ only, not {driver!r}")
