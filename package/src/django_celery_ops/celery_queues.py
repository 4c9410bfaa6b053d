"""Queue length measured on the broker itself (Redis and RabbitMQ); a missing queue is empty; the
cluster lease (Lease) that lets one exporter of many report the cluster-level gauges.

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


# --- the cluster lease: one exporter of many reports the cluster-level gauges ------------------
_ACQUIRE_OR_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


class Lease:
    """Leadership among the exporters of one broker, held in the broker itself.

    Redis: a key set with PX to this holder's token, renewed (atomically, only by its holder) on
    every poll; a holder that dies stops renewing and the key expires after `seconds`. RabbitMQ:
    an exclusive queue, which only one connection can own; the broker deletes it when that
    connection closes (a SIGKILLed holder's socket too). `held()` is judged on this process's
    clock: a lease not renewed within `seconds` is no longer held, so two exporters never both
    believe they hold it (a stalled holder lets go before the key expires on the broker). A
    broker error leaves it to run out: no peer can take the key before it expires either.
    """

    def __init__(self, key: str, seconds: float, token: str, clock):
        self.key, self.seconds, self.token, self._clock = key, seconds, token, clock
        self._valid_until = 0.0
        self._amqp = None  # (connection, channel) that owns the exclusive queue

    def held(self) -> bool:
        return self._clock() < self._valid_until

    def renew(self, connection) -> bool:
        """Take or keep the lease; False when another exporter holds it. Raises on broker errors."""
        started = self._clock()
        driver = connection.transport.driver_type
        if driver == "redis":
            ok = self._redis_renew(connection)
        elif driver == "amqp":
            ok = self._amqp_renew(connection)
        else:
            raise ValueError(f"the cluster lease needs Redis or RabbitMQ, not {driver!r}")
        self._valid_until = started + self.seconds if ok else 0.0
        return ok

    def _redis_key(self, channel) -> str:
        return f"{getattr(channel, 'global_keyprefix', '') or ''}{self.key}"  # EVAL is not prefixed by kombu

    def _redis_renew(self, connection) -> bool:
        channel = connection.default_channel
        ms = max(1, int(self.seconds * 1000))
        return bool(channel.client.eval(_ACQUIRE_OR_RENEW, 1, self._redis_key(channel), self.token, ms))

    def _amqp_renew(self, connection) -> bool:
        if self._amqp is not None:
            try:
                self._amqp[1].queue_declare(queue=self.key, passive=True)  # traffic also keeps it alive
                return True
            except Exception:  # noqa: BLE001 - the owning connection is gone: try to take it again
                self._close_amqp()
        owner = connection.clone()
        try:
            channel = owner.channel()
            channel.queue_declare(queue=self.key, exclusive=True, auto_delete=True, durable=False)
        except ChannelError as exc:
            owner.release()
            if "RESOURCE_LOCKED" in str(exc) or getattr(exc, "code", None) == 405:
                return False  # another exporter's connection owns it
            raise
        except Exception:
            owner.release()
            raise
        self._amqp = (owner, channel)
        return True

    def _close_amqp(self) -> None:
        owner, self._amqp = (self._amqp or (None, None))[0], None
        if owner is not None:
            try:
                owner.release()
            except Exception:  # noqa: BLE001, S110 - a dead connection closes with an error
                pass

    def release(self, connection=None) -> None:
        """Give the lease up at once (clean shutdown), so a peer takes over at its next poll."""
        self._valid_until = 0.0
        if self._amqp is not None:
            self._close_amqp()
        elif connection is not None and connection.transport.driver_type == "redis":
            channel = connection.default_channel
            channel.client.eval(_RELEASE, 1, self._redis_key(channel), self.token)


__all__ = ["Lease", "QueueStats", "measure", "redis_keys"]
