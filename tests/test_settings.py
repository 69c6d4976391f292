from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from searchsite.env import env_bool, env_choice, env_float, env_int, env_list, env_rate

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("reader", "raw", "message"),
    [
        (lambda: env_bool("X_FLAG", False), "maybe", "X_FLAG='maybe' is not a boolean"),
        (lambda: env_int("X_FLAG", 1), "ten", "X_FLAG='ten' is not a whole number"),
        (lambda: env_int("X_FLAG", 1, minimum=1), "0", "X_FLAG=0 is below the minimum of 1"),
        (lambda: env_float("X_FLAG", 1.0, maximum=2.0), "2.5", "X_FLAG=2.5 is above the maximum of 2.0"),
        (lambda: env_choice("X_FLAG", "info", {"info", "debug"}), "loud", "X_FLAG='loud' is not one of: debug, info"),
        (lambda: env_rate("X_FLAG", "1/second"), "fast", "X_FLAG='fast' is not a rate like 600/minute"),
        (lambda: env_rate("X_FLAG", "1/second"), "0/minute", "X_FLAG='0/minute' is not a rate"),
        (lambda: env_rate("X_FLAG", "1/second"), "10/week", "X_FLAG='10/week' is not a rate"),
    ],
)
def test_bad_values_raise_improperly_configured_naming_the_variable(monkeypatch, reader, raw, message):
    monkeypatch.setenv("X_FLAG", raw)
    with pytest.raises(ImproperlyConfigured) as caught:
        reader()
    assert str(caught.value).startswith(message)


def test_good_values_are_parsed(monkeypatch):
    monkeypatch.setenv("X_BOOL", "Yes")
    monkeypatch.setenv("X_INT", "1_000")
    monkeypatch.setenv("X_LIST", " a.example, b.example ,,")
    assert env_bool("X_BOOL", False) is True
    assert env_int("X_INT", 0) == 1000
    assert env_list("X_LIST", []) == ["a.example", "b.example"]
    assert env_int("X_MISSING", 7) == 7
    monkeypatch.setenv("X_RATE", " 1200 / Minute ")
    assert env_rate("X_RATE", "1/second") == "1200/minute"


def settings_in_subprocess(tmp_path, **env) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY", "DATABASE_URL"}}
    environment.update(VITRINE_DATA_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="searchsite.settings", **env)
    script = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.DEBUG, s.DATABASES['default']['ENGINE'], s.CELERY_TASK_ALWAYS_EAGER)"
    )
    return subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120
    )


def test_no_environment_at_all_gives_the_embedded_mode(tmp_path):
    result = settings_in_subprocess(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "django.db.backends.sqlite3", "True"]


def test_a_deployment_without_secret_key_refuses_to_start(tmp_path):
    result = settings_in_subprocess(tmp_path, DATABASE_URL="postgres://u:p@db:5432/vitrine")
    assert result.returncode != 0
    assert "SECRET_KEY is required when DEBUG is off" in result.stderr


def test_production_is_switched_on_by_environment_only(tmp_path):
    result = settings_in_subprocess(
        tmp_path,
        DATABASE_URL="postgres://u:p@db:5432/vitrine",
        SECRET_KEY="x" * 50,
        CELERY_BROKER_URL="redis://redis:6379/0",
        QDRANT_URL="http://qdrant:6333",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "django.db.backends.postgresql", "False"]


def test_workers_beside_the_embedded_store_are_refused_with_what_to_do(tmp_path):
    """A broker means worker processes; the embedded store admits one process."""
    refused = settings_in_subprocess(tmp_path, CELERY_BROKER_URL="redis://redis:6379/0")
    assert refused.returncode != 0
    assert "lock each other out" in refused.stderr
    for advice in ("QDRANT_URL", "manage.py serve_index", "VITRINE_INDEX_SERVER", "unset CELERY_BROKER_URL"):
        assert advice in refused.stderr
    shared = settings_in_subprocess(
        tmp_path, CELERY_BROKER_URL="redis://redis:6379/0", VITRINE_INDEX_SERVER="127.0.0.1:6390"
    )
    assert shared.returncode == 0, shared.stderr


def test_a_bad_database_url_is_reported(tmp_path):
    result = settings_in_subprocess(tmp_path, DATABASE_URL="nosuchdb://x", SECRET_KEY="x" * 50)
    assert result.returncode != 0
    assert "DATABASE_URL" in result.stderr


def deploy_check(**environment) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DEBUG": "0",
        "SECRET_KEY": "k" * 20 + secrets.token_urlsafe(60),
        "ALLOWED_HOSTS": "shop.example",
        **environment,
    }
    for name in ("VITRINE_HTTPS", "VITRINE_HSTS_SECONDS", "VITRINE_PROXY_SSL_HEADER"):
        if name not in environment:
            env.pop(name, None)
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_deploy_checks_pass_when_the_environment_says_the_site_is_https_only():
    plain = deploy_check()
    assert plain.returncode != 0
    for warning in ("W004", "W008", "W012", "W016"):  # HSTS, redirect, session and CSRF cookies
        assert warning in plain.stderr + plain.stdout

    https = deploy_check(
        VITRINE_HTTPS="1",
        VITRINE_HSTS_INCLUDE_SUBDOMAINS="1",
        VITRINE_HSTS_PRELOAD="1",
        VITRINE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO",
    )
    assert https.returncode == 0, https.stderr + https.stdout
    assert "no issues" in https.stdout
