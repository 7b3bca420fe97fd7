from django.apps import AppConfig


class ProgramsConfig(AppConfig):
    name = "programs"

    def ready(self):
        from . import signals  # noqa: F401
