from django.apps import AppConfig


class ObservabilityConfig(AppConfig):
    name = "app.observability"
    label = "observability"
    verbose_name = "Observability"
