from django.contrib import admin, messages

from app.jobs import services
from app.jobs.models import Job


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "state", "owner", "progress", "attempts", "created_at", "finished_at", "enqueued_at")
    list_filter = ("kind", "state", "owner")
    search_fields = ("id", "input_name", "error")
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in Job._meta.fields] + ["history"]
    actions = ["rerun_failed"]

    def has_add_permission(self, request):
        return False  # jobs are created through the API, which stores the upload first

    @admin.action(description="Re-run the selected failed jobs", permissions=["change"])
    def rerun_failed(self, request, queryset):
        """The on-call's re-run (runbooks CeleryWorkerDown, JobsStuck): services.jobs_rerun_failed."""
        ids = list(queryset.values_list("pk", flat=True))
        done, skipped = services.jobs_rerun_failed(ids, reason=f"re-run from the admin by {request.user}")
        if done:
            self.message_user(request, f"{len(done)} job(s) queued again.", messages.SUCCESS)
        for pk, why in skipped:
            self.message_user(request, f"{pk}: not re-run ({why}).", messages.WARNING)
