import os

from celery import shared_task
from django.contrib.auth import get_user_model


@shared_task
def ping(username=None):
    """Report which process ran the task and whether it sees `username` in the DB.

    Used by the health check and by the tests that prove a real worker runs
    tasks against the same database as the web process.
    """
    user_exists = get_user_model().objects.filter(username=username).exists() if username else None
    return {"pid": os.getpid(), "user_exists": user_exists}
