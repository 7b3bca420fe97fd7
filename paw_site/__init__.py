import os

# torch and llama.cpp both use OpenMP; by default idle OpenMP threads spin and
# steal the cores that the web process and the other worker need. Sleeping
# threads made a 16-example compile 8x faster on a shared 2-core machine.
# It must be set before either library loads, and this package loads first
# in every process (web, workers, manage.py, pytest).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .celery import app as celery_app  # noqa: E402

__all__ = ["celery_app"]
