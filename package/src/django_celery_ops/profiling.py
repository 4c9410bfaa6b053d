"""Profiles on demand: one request profiled by pyinstrument, written as HTML and speedscope JSON.

A request is profiled only when it asks for it (docs/profiling.md):

- it carries ``X-Profile-Token: <PROFILE_TOKEN>`` (compared in constant time; no token
  configured = never by header), or
- ``PROFILE_STAFF`` is on, it asks with ``?_profile=1`` and its session is a staff user's.

An anonymous request without the token is never profiled. The profile goes to
``PROFILE_DIR/<UTC time>-<pid>-<request id>.html`` and ``.speedscope.json`` beside it (the id
RequestMiddleware validated or made: the one in the response's X-Request-ID and the slow-request
log line; see write_new: a file is never overwritten, even by a request reusing an id), the
``PROFILE_KEEP`` newest are kept, and ``request.django_celery_ops_profile`` names the HTML file
(the slow-request log line adds ``profile=<path>``).

Off costs one dict lookup per request: pyinstrument is imported on the first profiled request,
never on the hot path. With no folder, or neither a token nor staff profiling, the middleware
takes itself out of the chain (MiddlewareNotUsed): nothing at all per request.

Place it below AuthenticationMiddleware (a staff session is known only there): the profile covers
the middlewares below it and the view, everything a view's code does (queries, templates,
serialisation); the time of the ones above is in the latency histogram. On the ASGI tier an async
view is profiled in the event loop (pyinstrument's async mode: time awaiting is shown as such);
a sync view is profiled in the thread that runs it.
"""
from __future__ import annotations

import hmac
import logging
import os
import secrets
import time
from datetime import datetime, timezone

from asgiref.sync import async_to_sync, iscoroutinefunction, markcoroutinefunction, sync_to_async

from django.core.exceptions import MiddlewareNotUsed

from . import conf
from .middleware import _REQUEST_ID  # the id's rule: no "/", safe in a file name

log = logging.getLogger("django_celery_ops.profiling")

HEADER = "X-Profile-Token"
META_KEY = "HTTP_X_PROFILE_TOKEN"
STAFF_PARAMETER = "_profile"
MIN_TOKEN_LENGTH = 32
HTML, SPEEDSCOPE = ".html", ".speedscope.json"


def enabled() -> bool:
    """Profiling is on: a folder, and a token or staff profiling (the middleware and check E008/E009 agree)."""
    return bool(conf.get("PROFILE_DIR")) and bool(conf.get("PROFILE_TOKEN") or conf.get("PROFILE_STAFF"))


def request_id_of(request) -> str:
    """The id RequestMiddleware gave the request; without it, a valid X-Request-Id, else a new one."""
    rid = getattr(request, "request_id", None)
    if not rid:
        rid = request.META.get("HTTP_X_REQUEST_ID", "")
        if not _REQUEST_ID.match(rid):
            rid = os.urandom(16).hex()
        request.request_id = rid
    return rid


STALE_TMP_SECONDS = 300  # a writer holds its hidden temp file for milliseconds: older ones are a killed writer's


def prune(directory: str, suffix: str, keep: int, companions: tuple[str, ...] = ()) -> None:
    """Remove all but the `keep` newest files ending in suffix (and their companions of the same stem),
    and the hidden temp files of writers killed before they linked theirs (_write_exclusive)."""
    try:
        listed = list(os.scandir(directory))
    except OSError:
        return
    stale = time.time() - STALE_TMP_SECONDS
    for e in listed:
        if e.name.startswith(".") and e.name.endswith(".tmp"):
            try:
                if e.stat(follow_symlinks=False).st_mtime < stale:
                    os.unlink(e.path)
            except OSError:
                pass
    entries = [e for e in listed if e.name.endswith(suffix) and not e.name.startswith(".") and e.is_file()]
    if len(entries) <= keep:
        return
    entries.sort(key=lambda e: e.stat().st_mtime_ns, reverse=True)
    for entry in entries[keep:]:
        stem = entry.name[:-len(suffix)]
        for name in (entry.name, *(stem + c for c in companions)):
            try:
                os.unlink(os.path.join(directory, name))
            except OSError:
                pass


def file_stem(request_id: str, now: datetime | None = None) -> str:
    """``<UTC time>-<pid>-<request id>``: sorts by time, names the request (valid ids only: _REQUEST_ID)."""
    now = now or datetime.now(timezone.utc)
    return f"{now:%Y%m%dT%H%M%S.%fZ}-{os.getpid()}-{request_id}"


def write_new(directory: str, request_id: str, texts: dict[str, str]) -> str:
    """Write texts' files (suffix -> text) under one new stem (file_stem); return the first one's path.

    A file is never replaced: a client that sends another request's id (X-Request-ID is the
    client's) gets a file of its own. The first suffix claims the stem; if that name exists (the
    same id, process and microsecond) the stem takes "~1", "~2", ...
    """
    os.makedirs(directory, exist_ok=True)
    stem = file_stem(request_id)
    (first, first_text), *rest = texts.items()
    for attempt in range(100):
        candidate = f"{stem}~{attempt}" if attempt else stem
        try:
            _write_exclusive(os.path.join(directory, candidate + first), first_text)
        except FileExistsError:
            continue
        for suffix, text in rest:
            _write_exclusive(os.path.join(directory, candidate + suffix), text)
        return os.path.join(directory, candidate + first)
    raise FileExistsError(f"no free file name for {stem}{first} in {directory}")


def _write_exclusive(path: str, text: str) -> None:
    """Create path with text, readable by this user only (code paths, timings); FileExistsError if it exists.

    Written to a new hidden file (O_EXCL, 0600) and linked into place: link(2) never replaces a
    file, and readers never see a half-written one.
    """
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with open(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.link(tmp, path)
    finally:
        os.unlink(tmp)


class ProfilingMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.directory = conf.get("PROFILE_DIR")
        token = conf.get("PROFILE_TOKEN")
        self.token = token.encode() if token else b""
        self.staff = conf.get("PROFILE_STAFF")
        self.keep = conf.get("PROFILE_KEEP")
        if not enabled():
            raise MiddlewareNotUsed("profiling is off: no PROFILE_DIR, or neither PROFILE_TOKEN nor PROFILE_STAFF")
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request):
        # The whole cost when off: one lookup (two with staff profiling: the query string).
        value = request.META.get(META_KEY)
        if value is None and not (self.staff and STAFF_PARAMETER in request.META.get("QUERY_STRING", "")):
            return self.get_response(request)  # in async mode: the coroutine, awaited by the caller
        if self.async_mode:
            return self._acall(request, value)
        if self._token_matches(value) or (value is None and self._staff_asks(request)):
            return self._profile(request)
        return self.get_response(request)

    def _token_matches(self, value) -> bool:
        if value is None or not self.token:
            return False
        return hmac.compare_digest(value.encode("latin-1", "replace"), self.token)

    def _staff_asks(self, request) -> bool:
        if request.GET.get(STAFF_PARAMETER) != "1":
            return False
        user = getattr(request, "user", None)  # AuthenticationMiddleware's lazy user: loaded only now
        return bool(user is not None and user.is_active and user.is_staff)

    async def _astaff_asks(self, request) -> bool:
        if request.GET.get(STAFF_PARAMETER) != "1" or not hasattr(request, "auser"):
            return False
        user = await request.auser()
        return bool(user.is_active and user.is_staff)

    # --- sync (WSGI, and the thread of a sync view on ASGI) ---------------------------------------

    def _profile(self, request):
        profiler = self._start(async_mode="disabled")
        if profiler is None:
            return self.get_response(request)
        try:
            return self.get_response(request)
        finally:
            self._finish(request, profiler)

    # --- async (ASGI) --------------------------------------------------------------------------

    async def _acall(self, request, value):
        if not (self._token_matches(value) or (value is None and await self._astaff_asks(request))):
            return await self.get_response(request)
        if self._view_is_async(request):
            profiler = self._start(async_mode="enabled")
            if profiler is None:
                return await self.get_response(request)
            try:
                return await self.get_response(request)
            finally:
                profiler.stop()
                await sync_to_async(self._write, thread_sensitive=False)(request, profiler)
        # A sync view runs in the request's thread-sensitive thread: profile there, with the rest of
        # the chain driven from that thread (async_to_sync), so the view lands in the same thread.
        return await sync_to_async(self._profile_in_thread, thread_sensitive=True)(request)

    def _profile_in_thread(self, request):
        profiler = self._start(async_mode="disabled")
        if profiler is None:
            return async_to_sync(self.get_response)(request)
        try:
            return async_to_sync(self.get_response)(request)
        finally:
            self._finish(request, profiler)

    @staticmethod
    def _view_is_async(request) -> bool:
        from django.urls import Resolver404, resolve

        try:
            return iscoroutinefunction(resolve(request.path_info, getattr(request, "urlconf", None)).func)
        except Resolver404:
            return True

    # --- both ------------------------------------------------------------------------------------

    def _start(self, async_mode: str):
        try:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.001, async_mode=async_mode)
            profiler.start()
            return profiler
        except Exception:  # no pyinstrument (check E009), or a profiler already running in this thread
            log.warning("could not start the profiler", exc_info=True)
            return None

    def _finish(self, request, profiler) -> None:
        try:
            profiler.stop()
        except Exception:
            log.warning("could not stop the profiler", exc_info=True)
            return
        self._write(request, profiler)

    def _write(self, request, profiler) -> None:
        """Render and write both files; a failure is logged, never raised into the request."""
        try:
            from pyinstrument.renderers import HTMLRenderer, SpeedscopeRenderer

            session = profiler.last_session
            if session is None:
                return
            rid = request_id_of(request)
            html = write_new(self.directory, rid, {HTML: HTMLRenderer().render(session),
                                                   SPEEDSCOPE: SpeedscopeRenderer().render(session)})
            request.django_celery_ops_profile = html
            prune(self.directory, HTML, self.keep, companions=(SPEEDSCOPE,))
            log.info("profile written request_id=%s duration_seconds=%.3f profile=%s", rid, session.duration, html)
        except Exception:
            log.warning("could not write the profile", exc_info=True)


__all__ = ["HEADER", "enabled", "file_stem", "MIN_TOKEN_LENGTH", "ProfilingMiddleware", "prune", "request_id_of",
           "STAFF_PARAMETER", "write_new"]
