"""JSON errors: clients get what was wrong (field and rule), never a traceback.

Every rejection of the API is `{"error": <sentence>, "field": <what>, "rule": <which rule>}`
(docs/api.md lists the rules); "error" stays the sentence older clients read.
"""
from django.core.exceptions import (
    DisallowedHost, RequestDataTooBig, SuspiciousMultipartForm, TooManyFieldsSent, TooManyFilesSent,
)
from django.http import JsonResponse


def error(status: int, message: str, field: str | None, rule: str, **extra) -> JsonResponse:
    """A 4xx JSON answer naming the field and the rule that failed."""
    return JsonResponse({"error": message, "field": field, "rule": rule, **extra}, status=status)


def _host(request) -> str:
    return request.META.get("HTTP_HOST", request.META.get("SERVER_NAME", ""))[:200]


def bad_request(request, exception=None):
    if isinstance(exception, DisallowedHost):
        return error(400, f"the Host header {_host(request)!r} is not one this server answers for "
                          "(DJANGO_ALLOWED_HOSTS)", "Host", "allowed_hosts")
    if isinstance(exception, RequestDataTooBig):
        return error(413, "the request body is larger than the server accepts", "body", "max_bytes")
    if isinstance(exception, TooManyFieldsSent):
        return error(400, "the request has too many form fields", "body", "max_fields")
    if isinstance(exception, TooManyFilesSent):
        return error(400, "the request has too many files", "body", "max_files")
    if isinstance(exception, SuspiciousMultipartForm):
        return error(400, "the multipart body is malformed", "body", "multipart")
    return error(400, "bad request", None, "bad_request")


def permission_denied(request, exception=None):
    return error(403, "forbidden", None, "forbidden")


def not_found(request, exception=None):
    return JsonResponse({"error": "not found", "path": request.path, "field": "path", "rule": "no_such_url"},
                        status=404)


def server_error(request):
    return JsonResponse({"error": "internal server error"}, status=500)


def csrf_failure(request, reason=""):
    """Django's CSRF page, as JSON: the API needs no CSRF token; this is the admin's."""
    return error(403, f"CSRF check failed: {reason}", "X-CSRFToken", "csrf")
