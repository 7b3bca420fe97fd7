from django.apps import AppConfig


class RuntimeConfig(AppConfig):
    """The runtime's Django side: the Celery tasks of the `runtime` queue and
    the service the site calls them through. The interpreter itself
    (pawhub.interpreter, pawhub.local) never imports Django."""

    name = "runtime"

    def ready(self):
        from programs.events import case_submitted

        from . import services

        def check(sender, case, **kwargs):
            services.case_check_on_commit(case=case)

        case_submitted.connect(check, weak=False, dispatch_uid="runtime.case_check")
