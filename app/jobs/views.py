"""The jobs HTTP API: accept work with 202, report its state, hand out the result.

Thin views: the rules live in services; the HTTP edge (tokens, rate limits, strictness) in
app/api. Every rejection is a 4xx JSON `{"error", "field", "rule"}` (app/errors.py).
"""
import json
from functools import wraps
from pathlib import Path

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import FileResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt

from app import errors
from app.api import access, guard
from app.jobs import services
from app.jobs.errors import InvalidUpload, UploadTooLarge
from app.jobs.models import Job

OPENAPI_PATH = Path(__file__).resolve().parent.parent / "api" / "openapi.json"


def not_allowed(request, allowed: tuple[str, ...]) -> JsonResponse:
    """405 naming the methods the URL answers."""
    response = errors.error(405, f"method {request.method[:20]!r} is not allowed here; allowed: {', '.join(allowed)}",
                            "method", "allowed_methods", allowed=list(allowed))
    response["Allow"] = ", ".join(allowed)
    return response


def methods(*allowed: str, auth: bool = True):
    """JSON API view: method check (405), then token (401) and rate limit (429); no CSRF (no cookies)."""
    if "GET" in allowed:
        allowed = (*allowed, "HEAD")

    def decorator(view):
        @csrf_exempt
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if request.method not in allowed:
                return not_allowed(request, allowed)
            if auth:
                caller = access.authenticate(request)
                if isinstance(caller, JsonResponse):
                    return caller
                refused = access.over_rate(caller)
                if refused is not None:
                    return refused
                request.caller = caller
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def _url(request, name: str, job_id) -> str:
    """JOBS_PUBLIC_BASE_URL + path; without it a path (the Host header is never echoed)."""
    path = reverse(name, args=[job_id])
    return f"{settings.JOBS_PUBLIC_BASE_URL}{path}" if settings.JOBS_PUBLIC_BASE_URL else path


def _accepted(request, job: Job) -> JsonResponse:
    return JsonResponse({"id": str(job.pk), "state": job.state, "status_url": _url(request, "jobs:detail", job.pk)},
                        status=202)


def _rejected(exc: InvalidUpload, field: str, rule: str) -> JsonResponse:
    body = {"error": str(exc), "field": getattr(exc, "field", field), "rule": getattr(exc, "rule", rule)}
    if getattr(exc, "job_id", None):
        body.update(id=str(exc.job_id), state=Job.State.FAILED)
    return JsonResponse(body, status=exc.status)


def _owner(request) -> str:
    return request.caller.owner or ""


def _declared_length(request) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


@methods("POST")
def import_create(request):
    if request.content_type != "multipart/form-data":
        return errors.error(415, "the body must be multipart/form-data with the CSV in field 'file'",
                            "Content-Type", "multipart/form-data")
    limit = guard.body_limit(request.path)
    if _declared_length(request) > limit:
        return errors.error(413, f"the request body is {_declared_length(request)} bytes, the limit is {limit}",
                            "Content-Length", "max_bytes", limit=limit)
    try:
        upload = request.FILES.get("file")
    except UploadTooLarge as exc:
        return _rejected(exc, "file", "max_bytes")
    except MultiPartParserError as exc:
        return errors.error(400, f"the multipart body is malformed: {str(exc)[:200]}", "body", "multipart")
    except SuspiciousOperation as exc:
        return errors.bad_request(request, exc)
    if upload is None:
        if getattr(request, "_upload_interrupted", False):
            return errors.error(400, "the multipart body ended inside the file part (truncated upload)",
                                "file", "complete_body")
        if not _declared_length(request):
            return errors.error(400, "multipart field 'file' is required; the body is empty (a chunked body "
                                     "needs its length or a server that de-chunks it)", "file", "required")
        return errors.error(400, "multipart field 'file' is required (a part named 'file' with a filename; "
                                 "empty, '.' and '..' names are refused)", "file", "required")
    try:
        job = services.job_create_import(upload, owner=_owner(request))
    except InvalidUpload as exc:
        return _rejected(exc, "file", "csv")
    return _accepted(request, job)


def _depth(value, limit: int) -> int:
    """Nesting depth of parsed JSON, stopping once past limit (no recursion)."""
    stack, deepest = [(value, 1)], 0
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def _json_body(request):
    """The JSON object of the body ({} when empty), or a 4xx answer."""
    limit = settings.JOBS_API_MAX_JSON_BYTES
    if _declared_length(request) > limit:
        return errors.error(413, f"the JSON body is {_declared_length(request)} bytes, the limit is {limit}",
                            "body", "max_bytes", limit=limit)
    try:
        raw = request.body
    except RequestDataTooBig:
        return errors.error(413, f"the JSON body is larger than {limit} bytes", "body", "max_bytes", limit=limit)
    if len(raw) > limit:
        return errors.error(413, f"the JSON body is {len(raw)} bytes, the limit is {limit}", "body", "max_bytes",
                            limit=limit)
    if not raw.strip():
        return {}
    try:
        params = json.loads(raw)
    except RecursionError:
        return errors.error(400, "the JSON body is nested too deeply", "body", "max_depth",
                            limit=settings.JOBS_API_MAX_JSON_DEPTH)
    except (ValueError, UnicodeDecodeError):
        return errors.error(400, "the body must be a JSON object", "body", "json_object")
    if not isinstance(params, dict):
        return errors.error(400, "the body must be a JSON object", "body", "json_object")
    if _depth(params, settings.JOBS_API_MAX_JSON_DEPTH) > settings.JOBS_API_MAX_JSON_DEPTH:
        return errors.error(400, "the JSON body is nested too deeply", "body", "max_depth",
                            limit=settings.JOBS_API_MAX_JSON_DEPTH)
    return params


@methods("POST")
def export_create(request):
    params = _json_body(request)
    if isinstance(params, JsonResponse):
        return params
    report = params.get("report", "jobs")
    if not isinstance(report, str):
        return errors.error(400, f"'report' must be a string, not {type(report).__name__}", "report", "string")
    try:
        job = services.job_create_export(params, owner=_owner(request))
    except InvalidUpload as exc:
        return _rejected(exc, "report", "known_report")
    return _accepted(request, job)


def _no_job(job_id: str) -> JsonResponse:
    return errors.error(404, f"no job with id {job_id[:64]}", "job_id", "known_job")


@methods("GET")
def job_detail(request, job_id: str):
    job = services.job_get_status(job_id, request.caller.owner)
    if job is None:
        return _no_job(job_id)
    result_url = None
    if job.state == Job.State.SUCCEEDED and job.result_file:
        result_url = _url(request, "jobs:result", job.pk)
    return JsonResponse({
        "id": str(job.pk), "kind": job.kind, "state": job.state, "progress": job.progress,
        "attempts": job.attempts, "error": job.error or None, "result_url": result_url,
    })


@methods("GET")
def job_result(request, job_id: str):
    job = services.job_get_status(job_id, request.caller.owner)
    if job is None:
        return _no_job(job_id)
    if job.state != Job.State.SUCCEEDED or not job.result_file:
        return errors.error(409, f"job {job.pk} has no result (state {job.state})", "state", "succeeded")
    try:
        handle = job.result_file.open("rb")
    except FileNotFoundError:
        return JsonResponse({"error": f"the result file of job {job.pk} is missing", "field": "result",
                             "rule": "present"}, status=410)
    return FileResponse(handle, as_attachment=True, filename=f"{job.kind}-{job.pk}{job.spec.result_suffix}")


@methods("GET", auth=False)
def openapi(request):
    """The OpenAPI 3.1 document of this API (app/api/openapi.json)."""
    return FileResponse(OPENAPI_PATH.open("rb"), content_type="application/json")
