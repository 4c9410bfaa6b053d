from django.contrib import admin

from app.jobs.models import Job


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "state", "owner", "progress", "attempts", "created_at", "finished_at", "enqueued_at")
    list_filter = ("kind", "state", "owner")
    search_fields = ("id", "input_name", "error")
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in Job._meta.fields] + ["history"]

    def has_add_permission(self, request):
        return False  # jobs are created through the API, which stores the upload first
