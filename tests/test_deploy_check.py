import subprocess
import sys

from tests.conftest import REPO, child_env

PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "a-long-random-production-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
    "ALLOWED_HOSTS": "pawhub.example.com",
    "SECURE_SSL_REDIRECT": "true",
    "BEHIND_HTTPS_PROXY": "true",
    "STATIC_MANIFEST": "true",
}


def manage(*args, **env):
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=child_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_production_settings(db):
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_flags_the_development_defaults(db):
    """The check is not vacuous: the embedded defaults are not production-safe."""
    result = manage("check", "--deploy", "--fail-level", "WARNING", SECRET_KEY="")
    assert result.returncode != 0
    assert "security.W" in result.stdout + result.stderr
