import os

# torch and llama.cpp both use OpenMP (one libgomp per process). Idle OpenMP
# threads that spin steal the cores the web process and the other worker need
# (sleeping threads made a 16-example compile 8x faster on a loaded 2-core
# machine), but threads that sleep at once pay a futex wake between every two
# operations of a graph: llama.cpp calls got 2.4x slower and training 1.3-1.8x
# slower with OMP_WAIT_POLICY=PASSIVE alone (benchmarks/runtime.py, same machine).
# So threads spin briefly (GOMP_SPINCOUNT, ~0.2 ms; it overrides the passive
# policy's zero) and then sleep. Both must be set before either library loads,
# and this package loads first in every process (web, workers, manage.py, pytest).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("GOMP_SPINCOUNT", "10000")

from .celery import app as celery_app  # noqa: E402

__all__ = ["celery_app"]
