from django.apps import AppConfig


class RuntimeConfig(AppConfig):
    """The runtime's Django side: the Celery tasks of the `runtime` queue and
    the service the site calls them through. The interpreter itself
    (pawhub.interpreter, pawhub.local) never imports Django."""

    name = "runtime"
