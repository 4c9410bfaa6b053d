"""JSON error pages: clients get the reason, never a traceback."""
from django.http import JsonResponse


def bad_request(request, exception=None):
    return JsonResponse({"error": "bad request"}, status=400)


def permission_denied(request, exception=None):
    return JsonResponse({"error": "forbidden"}, status=403)


def not_found(request, exception=None):
    return JsonResponse({"error": "not found", "path": request.path}, status=404)


def server_error(request):
    return JsonResponse({"error": "internal server error"}, status=500)
