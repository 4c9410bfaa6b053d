from django.contrib import admin
from django.urls import include, path

from app import health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("api/", include("app.jobs.urls")),
    path("drills/", include("app.drills.urls")),
    path("admin/", admin.site.urls),
]

handler400 = "app.errors.bad_request"
handler403 = "app.errors.permission_denied"
handler404 = "app.errors.not_found"
handler500 = "app.errors.server_error"
