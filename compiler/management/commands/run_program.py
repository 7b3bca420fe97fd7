import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from pawhub.calls import RunLimitError, RunTimeout
from pawhub.interpreter import shared_interpreter
from programs.artifacts import artifact_local_path
from programs.models import Program


class Command(BaseCommand):
    help = "Run a ready program on inputs; prints one JSON object per input, in order."

    def add_arguments(self, parser):
        parser.add_argument("program_id")
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--input", help="one input text")
        source.add_argument("--inputs", type=Path, help='JSONL file, one {"input": ...} per line')
        parser.add_argument("--max-tokens", type=int, default=64)

    def handle(self, *args, **opts):
        program = Program.objects.filter(pk=opts["program_id"]).first()
        if program is None:
            raise CommandError(f"no program {opts['program_id']!r}")
        if not program.is_ready:
            raise CommandError(f"program {program.id} is {program.status}, not ready")
        adapter = artifact_local_path(program.adapter_path, sha256=program.adapter_sha256)
        template = program.prompt_template
        for text in self.inputs(opts):
            try:
                result = shared_interpreter().run(
                    template,
                    text,
                    adapter=adapter,
                    max_tokens=opts["max_tokens"],
                    constraint=program.constraint,
                )
            except (RunLimitError, RunTimeout) as exc:
                self.stdout.write(json.dumps({"input": text, "error": str(exc)}))
                continue
            self.stdout.write(
                json.dumps(
                    {
                        "input": text,
                        "output": result.output,
                        "tokens_generated": result.tokens_generated,
                        "latency_ms": round(result.latency_ms, 1),
                    }
                )
            )

    def inputs(self, opts):
        if opts["input"] is not None:
            yield opts["input"]
            return
        try:
            lines = opts["inputs"].read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise CommandError(f"cannot read {opts['inputs']}: {exc}") from exc
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)["input"]
            except (ValueError, KeyError, TypeError) as exc:
                raise CommandError(f'line {number}: expected {{"input": ...}}') from exc
