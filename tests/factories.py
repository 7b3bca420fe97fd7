import hashlib

import factory
from django.contrib.auth import get_user_model

PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password(PASSWORD)


class StaffFactory(UserFactory):
    username = factory.Sequence(lambda n: f"staff{n}")
    is_staff = True
    is_superuser = True


class ProgramFactory(factory.django.DjangoModelFactory):
    """A ready, public program (no artifacts on disk unless a test writes them)."""

    class Meta:
        model = "programs.Program"
        skip_postgeneration_save = True

    id = factory.Sequence(lambda n: hashlib.sha256(f"program-{n}".encode()).hexdigest()[:20])
    owner = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"Program {n}")
    spec = factory.LazyAttribute(
        lambda p: (
            f"{p.name}: classify a support message by urgency.\n"
            "Examples:\nInput: server down\nOutput: urgent\n"
        )
    )
    compiler_alias = "paw-smollm2-135m"
    compiler_snapshot = "paw-smollm2-135m-20261124"
    compiler_fingerprint = "0" * 64
    status = "ready"
    selfcheck_accuracy = 0.9

    @factory.post_generation
    def tags(self, create, names, **kwargs):
        if create and names:
            from compiler.services import tags_named

            self.tags.set(tags_named(names))
