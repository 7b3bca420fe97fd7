"""Embed the specs of ready programs that have no vector yet, for search by meaning.

The compile worker embeds each program as it becomes ready; this catches up
the rest: programs made by seed_programs, ones ready before this existed, or a
change of embedding model (`--replace` redoes them all).
"""

import time

from django.core.management.base import BaseCommand, CommandError

from programs.models import Program
from programs.semantic import EMBEDDING_MODEL, EmbedderUnavailable, programs_embed


class Command(BaseCommand):
    help = "Embed the specs of ready programs that have no vector yet (search by meaning)."

    def add_arguments(self, parser):
        parser.add_argument("--replace", action="store_true", help="embed every program again")
        parser.add_argument("--batch-size", type=int, default=32, help="specs per model call")

    def handle(self, *, replace, batch_size, **options):
        started = time.monotonic()
        programs = Program.objects.filter(status=Program.Status.READY)
        try:
            written = programs_embed(
                programs=programs,
                replace=replace,
                batch_size=batch_size,
                progress=lambda n: self.stdout.write(f"  {n} programs"),
            )
        except EmbedderUnavailable as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Embedded {written} programs with {EMBEDDING_MODEL} "
                f"in {time.monotonic() - started:.1f} s."
            )
        )
