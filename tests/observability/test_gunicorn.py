"""Worker exits are classified by what really ended the worker."""
import pytest

from app.observability.gunicorn import exit_reason


@pytest.mark.parametrize(("aborted", "exit_info", "stopping", "reason"), [
    (True, {"code": 1, "recycled": False}, False, "timeout"),     # the master's SIGABRT after WORKER TIMEOUT
    (True, None, False, "timeout"),                               # ... and its SIGKILL when the abort did not end it
    (False, None, False, "signal"),                               # SIGKILL (OOM killer), SIGSEGV: no Python ran
    (False, {"code": 255, "recycled": False}, False, "crash"),    # an exception escaped the worker loop
    (False, {"code": 0, "recycled": True}, False, "recycled"),    # max_requests reached
    (False, {"code": 0, "recycled": False}, False, "shutdown"),   # told to stop (TERM, HUP, TTOU)
    (False, {"code": 0, "recycled": False}, True, "shutdown"),
    (False, None, True, "shutdown"),                              # killed at the end of a stop
])
def test_exit_reason(aborted, exit_info, stopping, reason):
    assert exit_reason(aborted, exit_info, stopping) == reason
