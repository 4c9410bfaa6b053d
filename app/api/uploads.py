"""Upload handlers that cap a file while it streams, and the spool folder's clean-up.

Django's own handlers keep reading whatever arrives; these stop at JOBS_MAX_UPLOAD_BYTES, so
a body without a Content-Length (chunked) costs at most the limit. They also record an upload
cut short (the multipart body ended inside the file part), which Django otherwise reports as
"no file". Spooled parts live in FILE_UPLOAD_TEMP_DIR as `*.upload` files that Django deletes
when the request ends; `clean_spool()` removes what a killed worker left behind.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from django.conf import settings
from django.core.files.uploadhandler import MemoryFileUploadHandler, TemporaryFileUploadHandler

from app.jobs.errors import UploadTooLarge

log = logging.getLogger(__name__)


class _Capped:
    def _cap(self, chunk: bytes, start: int) -> None:
        limit = settings.JOBS_MAX_UPLOAD_BYTES
        if start + len(chunk) > limit:
            raise UploadTooLarge(f"the file is more than {limit} bytes, the limit is {limit}")

    def upload_interrupted(self):
        self.request._upload_interrupted = True  # the view says "truncated", not "missing"
        super().upload_interrupted()


class CappedMemoryUploadHandler(_Capped, MemoryFileUploadHandler):
    def receive_data_chunk(self, raw_data, start):
        self._cap(raw_data, start)
        return super().receive_data_chunk(raw_data, start)


class CappedTemporaryUploadHandler(_Capped, TemporaryFileUploadHandler):
    def new_file(self, *args, **kwargs):
        Path(settings.FILE_UPLOAD_TEMP_DIR).mkdir(parents=True, exist_ok=True)
        super().new_file(*args, **kwargs)

    def receive_data_chunk(self, raw_data, start):
        self._cap(raw_data, start)
        return super().receive_data_chunk(raw_data, start)


def spool_bytes() -> int:
    """Bytes in the spool folder now."""
    root = Path(settings.FILE_UPLOAD_TEMP_DIR)
    return sum(p.stat().st_size for p in root.iterdir() if p.is_file()) if root.is_dir() else 0


def clean_spool(older_than: float | None = None) -> int:
    """Remove spooled uploads older than JOBS_SPOOL_STALE_SECONDS (a worker killed mid-request); return how many."""
    root = Path(settings.FILE_UPLOAD_TEMP_DIR)
    root.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - (settings.JOBS_SPOOL_STALE_SECONDS if older_than is None else older_than)
    removed = 0
    for path in root.glob("*.upload*"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except OSError:  # another worker removed it first
            pass
    if removed:
        log.warning("removed %d stale spooled upload(s) from %s", removed, os.fspath(root))
    return removed
