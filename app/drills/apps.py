from django.apps import AppConfig


class DrillsConfig(AppConfig):
    name = "app.drills"
    label = "drills"
    verbose_name = "Fault drills"
