import json
from pathlib import Path

from django.core.management.base import BaseCommand
from django.db import transaction

from compiler.services import compile_submit
from compiler.spec import merge_spec
from programs.models import Alias

EXAMPLES_FILE = Path(__file__).resolve().parents[2] / "examples" / "official.json"


class Command(BaseCommand):
    help = (
        "Compile the official example programs (idempotent: a second run finds them "
        "compiled or compiling) and name them in the official namespace."
    )

    def handle(self, *args, **options):
        for example in json.loads(EXAMPLES_FILE.read_text()):
            spec = merge_spec(example["description"], example["examples"])
            submission = compile_submit(
                spec=spec, owner=None, name=example["name"], tags=example["tags"]
            )
            with transaction.atomic():
                Alias.objects.get_or_create(
                    owner=None,
                    slug=example["slug"],
                    version=1,
                    defaults={"program": submission.program},
                )
            state = "ready" if submission.cache_hit else "compiling"
            self.stdout.write(f"{example['slug']}: {submission.program.id} ({state})")
