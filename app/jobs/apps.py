from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "app.jobs"
    label = "jobs"
    verbose_name = "Jobs (imports and exports)"
