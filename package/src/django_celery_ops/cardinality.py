"""Cardinality guards of the metrics processes: fold label values beyond a cap, forget gone workers.

A SeriesPolicy decides, per series key read from the slot files, what is served:
`policy(name, labels)` returns the labels to serve (maybe rewritten) or None to drop the series.
The slot reader calls it once per key and caches the answer; `policy.version` changes whenever
an earlier answer would change, and the reader then asks again for every key.

- Folding: the first `cap` distinct values of a label (`view` on the web tier, `name` for task
  names) are kept, in first-seen order; later values are served as FOLDED ("__other__"), their
  series summed into one. Decisions are sticky for the life of the process (a restart re-learns
  the order from the files). celery-exporter has no such cap: it serves every task name.
- Forgetting: the series of a `hostname` whose Celery workers are gone (said goodbye, or down)
  for longer than `forget_seconds` are dropped; they come back if a worker of that host does.
  A hostname no worker event ever named (files from before an exporter restart) counts as gone
  from its first sight; an empty one (no node name known) is never forgotten. Nothing new is
  forgotten while the event stream is down.
"""
from __future__ import annotations

import threading
import time

from prometheus_client.core import CounterMetricFamily

from .env import env_int

FOLDED = "__other__"
# Producers label celery_task_sent with their own host, which is no worker: never forgotten by host.
_PRODUCER_METRICS = ("celery_task_sent",)


class SeriesPolicy:
    """Rewrite or drop series by label; thread-safe."""

    def __init__(self, fold: dict[str, int] | None = None, workers=None, forget_seconds: float = 0.0,
                 clock=time.monotonic):
        self._caps = {label: cap for label, cap in (fold or {}).items() if cap > 0}
        self._workers, self._forget_after, self._clock = workers, forget_seconds, clock
        self._lock = threading.Lock()
        self._kept: dict[str, dict[str, None]] = {label: {} for label in self._caps}  # insertion = first seen
        self._folded_values: dict[str, set[str]] = {label: set() for label in self._caps}
        self._first_seen: dict[str, float] = {}  # hostname -> when a series first showed it
        self._forgotten: set[str] = set()
        self._forgotten_total = 0
        self._version = 0

    @property
    def version(self) -> int:
        """Bumped when an earlier decision changed; reading it judges the forget clock now."""
        if self._workers is not None and self._forget_after > 0:
            with self._lock:
                self._refresh()
        return self._version

    def __call__(self, name: str, labels: dict) -> dict | None:
        with self._lock:
            hostname = labels.get("hostname")
            if hostname and self._workers is not None and not name.startswith(_PRODUCER_METRICS):  # "": no host
                self._first_seen.setdefault(hostname, self._clock())
                if hostname in self._forgotten:
                    return None
            out = dict(labels)
            for label, cap in self._caps.items():
                value = out.get(label)
                if value is None or value == FOLDED:
                    continue
                kept = self._kept[label]
                if value in kept:
                    continue
                if len(kept) < cap:
                    kept[value] = None
                    continue
                self._folded_values[label].add(value)
                out[label] = FOLDED
            return out

    def _refresh(self) -> None:
        now = self._clock()
        hosts = self._workers.hosts()  # hostname -> None while up, else when it was last seen
        listening = self._workers.listening_since()
        back = {h for h in self._forgotten if h in hosts and hosts[h] is None}
        gone = set()
        if listening is not None:
            for hostname, first in self._first_seen.items():
                if hostname in self._forgotten:
                    continue
                since = hosts[hostname] if hostname in hosts else max(first, listening)
                if since is not None and now - since > self._forget_after:
                    gone.add(hostname)
        if back or gone:
            self._forgotten = (self._forgotten - back) | gone
            self._forgotten_total += len(gone)
            self._version += 1

    def folded(self, label: str) -> set[str]:
        """The values of `label` served as FOLDED so far."""
        with self._lock:
            return set(self._folded_values.get(label, ()))

    def forgotten(self) -> set[str]:
        """The hostnames whose series are dropped now."""
        with self._lock:
            return set(self._forgotten)

    def collect(self):
        with self._lock:
            folded = {label: len(values) for label, values in self._folded_values.items()}
            forgotten = self._forgotten_total
        family = CounterMetricFamily("django_celery_ops_cardinality_folded", f"Distinct label values served as "
                                     f"{FOLDED} because the label reached its cap.", labels=["label"])
        for label, count in sorted(folded.items()):
            family.add_metric([label], count)
        yield family
        family = CounterMetricFamily("django_celery_ops_cardinality_forgotten", "Label values whose series were "
                                     "dropped (hostnames of workers gone longer than the forget delay).",
                                     labels=["label"])
        if self._workers is not None:
            family.add_metric(["hostname"], forgotten)
        yield family


def exporter_policy(workers, forget_seconds: float, max_task_names: int) -> SeriesPolicy:
    """The Celery exporter's policy: task names capped, gone workers' hostnames forgotten."""
    return SeriesPolicy(fold={"name": max_task_names}, workers=workers, forget_seconds=forget_seconds)


def web_policy() -> SeriesPolicy:
    """A web metrics server's policy, from OBS_METRICS_MAX_VIEWS and OBS_METRICS_MAX_TASK_NAMES (0: no cap)."""
    return SeriesPolicy(fold={"view": env_int("OBS_METRICS_MAX_VIEWS", DEFAULT_MAX_VIEWS, minimum=0),
                              "name": env_int("OBS_METRICS_MAX_TASK_NAMES", DEFAULT_MAX_TASK_NAMES, minimum=0)})


# The largest sizes the scrape benchmark holds within half a 10 s scrape_timeout (docs/scaling.md).
DEFAULT_MAX_VIEWS = 1000
DEFAULT_MAX_TASK_NAMES = 1000

__all__ = ["DEFAULT_MAX_TASK_NAMES", "DEFAULT_MAX_VIEWS", "FOLDED", "SeriesPolicy",
           "exporter_policy", "web_policy"]
