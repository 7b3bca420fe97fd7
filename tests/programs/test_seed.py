"""`manage.py seed_programs` makes realistic, consistent programs for benchmarks."""

import pytest
from django.core.management import call_command
from django.db.models import Sum

from programs.models import Program, Vote

pytestmark = pytest.mark.django_db


def test_seed_programs(client):
    call_command("seed_programs", count=60, users=8, batch_size=25)
    assert Program.objects.count() == 60
    assert Program.objects.listed().count() > 40
    assert Program.objects.filter(tags__isnull=True).count() == 0
    for program in Program.objects.all():
        total = Vote.objects.filter(program=program).aggregate(s=Sum("value"))["s"] or 0
        assert program.score == total
    assert len(set(Program.objects.values_list("created_at", flat=True))) > 50
    # Again: more programs, not the same ones.
    call_command("seed_programs", count=10, users=8)
    assert Program.objects.count() == 70
    page = client.get("/hub/", {"q": "urgency"})
    assert page.status_code == 200 and page.context["page"].paginator.count > 0
