"""The site's side of running programs: the `runtime` queue's Celery tasks and
the service that Try it, ``POST /api/v1/infer`` and case checks call them
through. Reading, vetting and running a program is the ``pawhub`` core's."""
