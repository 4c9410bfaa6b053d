from django.contrib import admin
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from app import health
from app.jobs import views


def _probe(view):
    """A probe answers GET and HEAD; any other method gets a JSON 405 (not the CSRF page)."""
    @csrf_exempt
    def probe(request):
        if request.method not in ("GET", "HEAD"):
            return views.not_allowed(request, ("GET", "HEAD"))
        return view(request)

    probe.__name__ = probe.__qualname__ = view.__name__
    return probe


urlpatterns = [
    path("healthz", _probe(health.healthz), name="healthz"),
    path("readyz", _probe(health.readyz), name="readyz"),
    path("api/openapi.json", views.openapi, name="openapi"),
    path("api/", include("app.jobs.urls")),
    path("drills/", include("app.drills.urls")),
    path("admin/", admin.site.urls),
]

handler400 = "app.errors.bad_request"
handler403 = "app.errors.permission_denied"
handler404 = "app.errors.not_found"
handler500 = "app.errors.server_error"
