"""Fill the hub with realistic fake programs, for benchmarks and screenshots.

Not for users: the programs have no files to download. Everything is written
with bulk_create in batches, so 100k programs take a minute or two.
"""

import hashlib
import random
import time
from contextlib import contextmanager
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from programs.models import Alias, Program, Tag, Vote

SEED_USER_PREFIX = "seed-"

# (name, task description, example pairs, tags): varied enough that search,
# tags and ranking behave as on a real hub.
TASKS = [
    (
        "{Thing} urgency",
        "Classify a {thing} by urgency: urgent, normal or low.",
        [("the server is down for everyone", "urgent"), ("please update my address", "low")],
        ["classification", "support", "triage"],
    ),
    (
        "{Thing} sentiment",
        "Say whether a {thing} is positive, negative or neutral.",
        [("I love it, works great", "positive"), ("broke after a day", "negative")],
        ["classification", "sentiment", "reviews"],
    ),
    (
        "{Thing} language",
        "Name the language a {thing} is written in.",
        [("bonjour tout le monde", "French"), ("guten Morgen", "German")],
        ["classification", "language"],
    ),
    (
        "Dates in {thing}s",
        "Extract every date in a {thing} and write it as YYYY-MM-DD.",
        [("meet me on March 3rd 2024", "2024-03-03"), ("due 1/2/2025", "2025-01-02")],
        ["extraction", "dates", "normalization"],
    ),
    (
        "{Thing} totals",
        "Extract the total amount from a {thing}, digits only.",
        [("Total due: $1,234.50", "1234.50"), ("amount EUR 99", "99")],
        ["extraction", "finance"],
    ),
    (
        "{Thing} summary",
        "Summarize a {thing} in one short sentence.",
        [("The meeting moved to Friday because the room was booked.", "Meeting moved to Friday.")],
        ["summarization", "text"],
    ),
    (
        "{Thing} to title case",
        "Rewrite a {thing} headline in title case.",
        [("the quick brown fox", "The Quick Brown Fox")],
        ["formatting", "text"],
    ),
    (
        "{Thing} spam filter",
        "Answer spam or ham for a {thing}.",
        [("WIN A FREE CRUISE NOW", "spam"), ("lunch at noon?", "ham")],
        ["classification", "spam", "email"],
    ),
    (
        "{Thing} PII redactor",
        "Replace names, emails and phone numbers in a {thing} with [REDACTED].",
        [("call Ann at 555-1234", "call [REDACTED] at [REDACTED]")],
        ["privacy", "redaction"],
    ),
    (
        "{Thing} intent",
        "Label the intent of a {thing}: question, complaint, request or praise.",
        [("why is my bill so high?", "question"), ("thanks, great service", "praise")],
        ["classification", "intent", "support"],
    ),
    (
        "{Thing} JSON fixer",
        "Turn a loose key: value {thing} into compact JSON.",
        [("name: Ann, age: 3", '{"name":"Ann","age":3}')],
        ["formatting", "json", "code"],
    ),
    (
        "{Thing} keywords",
        "List the three most important keywords of a {thing}, comma separated.",
        [("solar panels cut the energy bill", "solar, panels, energy")],
        ["extraction", "keywords"],
    ),
]
THINGS = [
    "support ticket",
    "product review",
    "tweet",
    "email",
    "chat message",
    "invoice",
    "news headline",
    "commit message",
    "bug report",
    "help-desk message",
    "forum post",
    "receipt",
    "restaurant review",
    "job posting",
    "SMS",
    "meeting note",
]
COMPILERS = [("paw-smollm2-135m", "paw-smollm2-135m-20261202b")]


@contextmanager
def explicit_timestamps():
    """Let bulk_create keep the spread-out created_at values given here."""
    fields = [Program._meta.get_field(name) for name in ("created_at", "updated_at")]
    saved = [(f.auto_now, f.auto_now_add) for f in fields]
    for f in fields:
        f.auto_now = f.auto_now_add = False
    try:
        yield
    finally:
        for f, (auto_now, auto_now_add) in zip(fields, saved, strict=True):
            f.auto_now, f.auto_now_add = auto_now, auto_now_add


class Command(BaseCommand):
    help = "Create N realistic ready programs (with owners, tags, names and votes) for benchmarks."

    def add_arguments(self, parser):
        parser.add_argument("--count", type=int, default=100)
        parser.add_argument("--users", type=int, default=200, help="seed authors and voters")
        parser.add_argument("--batch-size", type=int, default=2000)
        parser.add_argument("--seed", type=int, default=1)

    def handle(self, *, count, users, batch_size, seed, **options):
        started = time.monotonic()
        rng = random.Random(seed)
        authors = self.seed_users(users)
        tags = self.seed_tags()
        offset = Program.objects.filter(owner__username__startswith=SEED_USER_PREFIX).count()
        made = votes = 0
        for start in range(offset, offset + count, batch_size):
            stop = min(start + batch_size, offset + count)
            batch_votes = self.seed_batch(rng, seed, range(start, stop), authors, tags)
            made += stop - start
            votes += batch_votes
            self.stdout.write(f"  {made}/{count} programs")
        self.stdout.write(
            self.style.SUCCESS(
                f"Seeded {made} programs, {votes} votes, {len(authors)} authors "
                f"in {time.monotonic() - started:.1f} s."
            )
        )

    def seed_users(self, n):
        User = get_user_model()
        names = [f"{SEED_USER_PREFIX}{i:04d}" for i in range(n)]
        User.objects.bulk_create(
            [User(username=name, email=f"{name}@example.com", password="!") for name in names],
            ignore_conflicts=True,
        )
        return list(User.objects.filter(username__in=names))

    def seed_tags(self):
        names = sorted({tag for *_, task_tags in TASKS for tag in task_tags})
        Tag.objects.bulk_create([Tag(name=name) for name in names], ignore_conflicts=True)
        return {tag.name: tag for tag in Tag.objects.filter(name__in=names)}

    def seed_batch(self, rng, seed, indexes, authors, tags):
        now = timezone.now()
        programs, program_tags, aliases, votes = [], [], [], []
        for i in indexes:
            name_pattern, description, examples, task_tags = rng.choice(TASKS)
            thing = rng.choice(THINGS)
            name = name_pattern.format(Thing=thing.capitalize(), thing=thing)
            spec = "\n".join(
                [description.format(thing=thing), "", "Examples:"]
                + [f"Input: {x}\nOutput: {y}\n" for x, y in examples]
            )
            digest = hashlib.sha256(f"seed:{seed}:{i}".encode()).hexdigest()
            created = now - timedelta(minutes=rng.randint(0, 60 * 24 * 365))
            author = rng.choice(authors)
            alias, snapshot = rng.choice(COMPILERS)
            selfcheck = round(rng.uniform(0.55, 1.0), 2)
            heldout = rng.randint(8, 24) if rng.random() < 0.4 else 0
            program = Program(
                id=digest[:20],
                owner=author,
                name=name,
                spec=spec,
                pseudo_program=f"Read the {thing}. {description.format(thing=thing)} "
                "Answer with the label only.",
                compiler_alias=alias,
                compiler_snapshot=snapshot,
                compiler_fingerprint=hashlib.sha256(snapshot.encode()).hexdigest(),
                status=Program.Status.READY,
                is_public=rng.random() > 0.05,
                is_hidden=rng.random() < 0.01,
                example_count=len(examples),
                selfcheck_accuracy=selfcheck,
                heldout_accuracy=round(max(0.0, selfcheck - rng.uniform(0, 0.2)), 2)
                if heldout
                else None,
                heldout_count=heldout,
                adapter_size=rng.randint(2_500_000, 6_000_000),
                adapter_sha256=hashlib.sha256(f"adapter:{digest}".encode()).hexdigest(),
                bundle_size=rng.randint(2_600_000, 6_100_000),
                bundle_sha256=hashlib.sha256(f"bundle:{digest}".encode()).hexdigest(),
                download_count=min(10**6, int(rng.paretovariate(1.2)) - 1),
                created_at=created,
                updated_at=created,
                ready_at=created,
            )
            programs.append(program)
            for tag in rng.sample(task_tags, k=rng.randint(1, len(task_tags))):
                program_tags.append(Program.tags.through(program_id=program.id, tag=tags[tag]))
            if rng.random() < 0.3:
                aliases.append(
                    Alias(owner=author, slug=f"{slugify(name)[:40]}-{i}", program=program)
                )
            voters = rng.sample(authors, k=min(len(authors), int(rng.paretovariate(1.1)) - 1))
            for voter in voters:
                value = 1 if rng.random() < 0.85 else -1
                votes.append(Vote(user=voter, program=program, value=value))
                program.score += value
        with transaction.atomic(), explicit_timestamps():
            Program.objects.bulk_create(programs, ignore_conflicts=True)
            Program.tags.through.objects.bulk_create(program_tags, ignore_conflicts=True)
            Alias.objects.bulk_create(aliases, ignore_conflicts=True)
            Vote.objects.bulk_create(votes, ignore_conflicts=True)
            Program.objects.filter(pk__in=[p.pk for p in programs]).refresh_search_vector()
        return len(votes)
