"""Job errors: what the client did wrong, and what may pass if tried again."""
from django.core.exceptions import SuspiciousOperation


class InvalidUpload(SuspiciousOperation):
    """The upload can never be processed; the message is the reason shown to the client."""

    status = 400


class UploadTooLarge(InvalidUpload):
    status = 413


class TransientJobError(Exception):
    """A failure that may pass on a later attempt (storage not ready, database busy)."""
