from django.urls import path

from app.drills import views

app_name = "drills"
urlpatterns = [
    path("slow-view/", views.slow_view, name="slow-view"),
    path("request-headers/", views.request_headers, name="request-headers"),
    path("cpu-view/", views.cpu_view, name="cpu-view"),
    path("blocking-async/", views.blocking_async, name="blocking-async"),
    path("nonblocking-async/", views.nonblocking_async, name="nonblocking-async"),
    path("sync-export/", views.sync_export, name="sync-export"),
    path("offloaded-export/", views.offloaded_export, name="offloaded-export"),
    path("worker-timeout/", views.worker_timeout, name="worker-timeout"),
    path("error/", views.error, name="error"),
    path("db-view/", views.db_view, name="db-view"),
    path("db-errors/", views.db_errors, name="db-errors"),
    path("consumer/", views.consumer, name="consumer"),
    path("tasks/", views.tasks, name="tasks"),
    path("tasks/purge/", views.purge_default_queue, name="tasks-purge"),
]
