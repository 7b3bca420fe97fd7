"""gunicorn's settings beside its command line (the Procfile's); gunicorn reads
this file from the folder it starts in, the repository root.

The uvicorn worker writes each request to gunicorn's access log in uvicorn's own
words (`127.0.0.1:50134 - "GET /hub/ HTTP/1.1" 200`) and ignores
--access-logformat, so nothing said which worker answered, nor when. Each line
now starts as gunicorn's own log lines do, with the time and the worker's pid:

    [2026-12-05 18:00:00 +0000] [12235] 127.0.0.1:50134 - "GET /hub/ HTTP/1.1" 200
"""

import logging

ACCESS_LOG_FORMAT = "%(asctime)s [%(process)d] %(message)s"
DATE_FORMAT = "[%Y-%m-%d %H:%M:%S %z]"  # gunicorn's error log's


def post_worker_init(worker):
    """In each worker, once it is set up: its access-log handlers (those of
    --access-logfile, which the uvicorn worker's access logger shares) say who wrote."""
    for handler in worker.log.access_log.handlers:
        handler.setFormatter(logging.Formatter(ACCESS_LOG_FORMAT, DATE_FORMAT))
