"""The jobs HTTP API: accept work with 202, report its state, hand out the result."""
import json
import secrets
import uuid
from functools import wraps

from django.conf import settings
from django.http import FileResponse, JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from app.jobs import services
from app.jobs.errors import InvalidUpload
from app.jobs.models import Job


def _api(view):
    """JSON API view: token check when JOBS_API_TOKEN is set; no CSRF (no cookies are used)."""

    @csrf_exempt
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        token = settings.JOBS_API_TOKEN
        if token:
            given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            if not secrets.compare_digest(given, token):
                return JsonResponse({"error": "missing or wrong API token"}, status=401)
        return view(request, *args, **kwargs)

    return wrapper


def _accepted(request, job: Job) -> JsonResponse:
    url = request.build_absolute_uri(reverse("jobs:detail", args=[job.pk]))
    return JsonResponse({"id": str(job.pk), "state": job.state, "status_url": url}, status=202)


def _rejected(exc: InvalidUpload) -> JsonResponse:
    body = {"error": str(exc)}
    if getattr(exc, "job_id", None):
        body.update(id=str(exc.job_id), state=Job.State.FAILED)
    return JsonResponse(body, status=exc.status)


@_api
@require_POST
def import_create(request):
    try:
        job = services.job_create_import(request.FILES.get("file"))
    except InvalidUpload as exc:
        return _rejected(exc)
    return _accepted(request, job)


@_api
@require_POST
def export_create(request):
    params = {}
    if request.body:
        try:
            params = json.loads(request.body)
        except (ValueError, UnicodeDecodeError):
            return JsonResponse({"error": "the body must be a JSON object"}, status=400)
        if not isinstance(params, dict):
            return JsonResponse({"error": "the body must be a JSON object"}, status=400)
    try:
        job = services.job_create_export(params)
    except InvalidUpload as exc:
        return _rejected(exc)
    return _accepted(request, job)


def _get_job(job_id: str) -> Job | None:
    try:
        return Job.objects.filter(pk=uuid.UUID(job_id)).first()
    except ValueError:
        return None


@_api
@require_GET
def job_detail(request, job_id: str):
    job = _get_job(job_id)
    if job is None:
        return JsonResponse({"error": f"no job with id {job_id}"}, status=404)
    result_url = None
    if job.state == Job.State.SUCCEEDED and job.result_file:
        result_url = request.build_absolute_uri(reverse("jobs:result", args=[job.pk]))
    return JsonResponse({
        "id": str(job.pk), "kind": job.kind, "state": job.state, "progress": job.progress,
        "attempts": job.attempts, "error": job.error or None, "result_url": result_url,
    })


@_api
@require_GET
def job_result(request, job_id: str):
    job = _get_job(job_id)
    if job is None:
        return JsonResponse({"error": f"no job with id {job_id}"}, status=404)
    if job.state != Job.State.SUCCEEDED or not job.result_file:
        return JsonResponse({"error": f"job {job.pk} has no result (state {job.state})"}, status=409)
    try:
        handle = job.result_file.open("rb")
    except FileNotFoundError:
        return JsonResponse({"error": f"the result file of job {job.pk} is missing"}, status=410)
    suffix = ".json" if job.kind == Job.Kind.IMPORT else ".csv"
    return FileResponse(handle, as_attachment=True, filename=f"{job.kind}-{job.pk}{suffix}")
