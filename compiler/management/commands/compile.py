import time
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from compiler import registry, services
from compiler.models import CompileJob
from compiler.spec import SpecError


class Command(BaseCommand):
    help = "Compile a spec file into a program (a worker must be running)."

    def add_arguments(self, parser):
        parser.add_argument("spec_file", type=Path)
        parser.add_argument("--compiler", default=None, help="alias or dated snapshot")
        parser.add_argument("--name", default="")
        parser.add_argument("--owner", default=None, help="username to own the program")
        parser.add_argument("--private", action="store_true")
        parser.add_argument("--wait", action="store_true", help="wait until it is ready")
        parser.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait")

    def handle(self, *args, **opts):
        try:
            spec = opts["spec_file"].read_text(encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"cannot read {opts['spec_file']}: {exc}") from exc
        owner = None
        if opts["owner"]:
            owner = get_user_model().objects.filter(username=opts["owner"]).first()
            if owner is None:
                raise CommandError(f"no user named {opts['owner']!r}")
        try:
            submission = services.compile_submit(
                spec=spec,
                owner=owner,
                compiler=opts["compiler"],
                name=opts["name"],
                is_public=not opts["private"],
            )
        except (SpecError, registry.UnknownCompiler) as exc:
            raise CommandError(str(exc)) from exc
        program = submission.program
        if submission.cache_hit:
            self.stdout.write(f"program {program.id} is already compiled")
            return
        job = submission.job
        joined = " (joined a running compile)" if submission.joined else ""
        self.stdout.write(f"job {job.id}{joined}")
        if not opts["wait"]:
            return
        deadline = time.monotonic() + opts["timeout"]
        shown = None
        while job.status in CompileJob.ACTIVE:
            if time.monotonic() > deadline:
                raise CommandError(f"job {job.id} still {job.status} after {opts['timeout']}s")
            if (job.stage, job.percent) != shown:
                shown = (job.stage, job.percent)
                self.stderr.write(f"  {job.status} {job.stage} {job.percent}%")
            time.sleep(1)
            job.refresh_from_db()
        if job.status != CompileJob.Status.READY:
            raise CommandError(f"job {job.id} {job.status}: {job.error}")
        self.stdout.write(f"program {program.id} ready")
