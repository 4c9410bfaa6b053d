from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "app.jobs"
    label = "jobs"
    verbose_name = "Jobs (imports and exports)"

    def ready(self):
        # jobs_finished_total's kind x state children exist at 0 from start-up in every process,
        # not only after the first request that imports the views.
        from app.jobs import metrics  # noqa: F401
