from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.core.exceptions import ImproperlyConfigured

from searchsite.env import (
    env_bool,
    env_choice,
    env_float,
    env_http_url,
    env_int,
    env_list,
    env_pattern,
    env_rate,
)

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
        (lambda: env_http_url("X_FLAG"), "api.openai.com/v1", "X_FLAG='api.openai.com/v1' is not an http"),
        (lambda: env_http_url("X_FLAG"), "ftp://host/v1", "X_FLAG='ftp://host/v1' is not an http"),
        (lambda: env_http_url("X_FLAG"), "http://host:port/v1", "X_FLAG='http://host:port/v1' is not an http"),
        (lambda: env_pattern("X_FLAG", "1", r"\d+x\d+", "a size"), "big", "X_FLAG='big' is not a size"),
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
    monkeypatch.setenv("X_URL", " http://127.0.0.1:11434/v1 ")
    assert env_http_url("X_URL") == "http://127.0.0.1:11434/v1"
    assert env_http_url("X_MISSING") == ""


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
    """``manage.py check --deploy`` with DEBUG off, a strong key, and of Vitrine's own
    variables only those given."""
    env = {
        **{name: value for name, value in os.environ.items() if not name.startswith("VITRINE_")},
        "DEBUG": "0",
        "SECRET_KEY": "k" * 20 + secrets.token_urlsafe(60),
        "ALLOWED_HOSTS": "shop.example",
        **environment,
    }
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def warnings_of(result: subprocess.CompletedProcess) -> set[str]:
    return set(re.findall(r"\(security\.(W\d+)\)", result.stdout + result.stderr))


def test_a_deployment_is_https_only_unless_told_otherwise():
    default = deploy_check()  # DEBUG off, nothing said about HTTPS
    # Redirect, secure cookies and HSTS are on; only HSTS's two hard-to-undo extras are asked about.
    assert warnings_of(default) == {"W005", "W021"}, default.stderr

    plain = deploy_check(VITRINE_HTTPS="0")  # plain http: compose tried on localhost
    assert plain.returncode != 0
    assert {"W004", "W008", "W012", "W016"} <= warnings_of(plain)  # HSTS, redirect, session and CSRF cookies


def test_saying_no_to_hsts_subdomains_and_preload_is_an_answer_the_checks_accept():
    answered = deploy_check(VITRINE_HSTS_INCLUDE_SUBDOMAINS="0", VITRINE_HSTS_PRELOAD="0")
    assert answered.returncode == 0, answered.stderr + answered.stdout
    assert "no issues (2 silenced)" in answered.stdout

    both = deploy_check(
        VITRINE_HTTPS="1",
        VITRINE_HSTS_INCLUDE_SUBDOMAINS="1",
        VITRINE_HSTS_PRELOAD="1",
        VITRINE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO",
    )
    assert both.returncode == 0, both.stderr + both.stdout
    assert "no issues (0 silenced)" in both.stdout


COMPOSE_VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<word>[^}]*))?\}")


def compose_environment(service: str, given: dict[str, str]) -> dict[str, str]:
    """The environment docker compose gives a service, ``given`` standing for the .env file
    (``${X:-default}``: the default when X is unset or empty; ``${X-default}``: only when
    unset; ``${X:?message}``: X is required)."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())

    def substitute(match: re.Match) -> str:
        name, op, word = match["name"], match["op"], match["word"]
        value = given.get(name)
        if op in (":-", ":?") and not value or op in ("-", "?") and value is None:
            assert "?" not in op, f"docker compose would refuse to start without {name}: {word}"
            return word if op else ""
        return value or ""

    return {
        name: COMPOSE_VARIABLE.sub(substitute, str(value))
        for name, value in compose["services"][service]["environment"].items()
    }


def test_the_deploy_checks_pass_with_the_environment_compose_gives_the_web():
    environment = compose_environment("web", {"SECRET_KEY": secrets.token_urlsafe(50)})
    assert environment["DATABASE_URL"] == "postgres://vitrine:vitrine@postgres:5432/vitrine"  # check connects to none
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        # Exactly what compose gives, and where to find programs.
        env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **environment},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "System check identified no issues" in result.stdout


def security_settings(tmp_path, **env) -> dict:
    """The HTTPS settings a process computes from ``env`` (and nothing else of Vitrine's)."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("VITRINE_") and name not in {"DEBUG", "SECRET_KEY", "DATABASE_URL"}
    }
    environment.update(VITRINE_DATA_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="searchsite.settings", **env)
    names = [
        "DEBUG",
        "SECURE_SSL_REDIRECT",
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
        "SECURE_HSTS_SECONDS",
        "SECURE_PROXY_SSL_HEADER",
        "SILENCED_SYSTEM_CHECKS",
    ]
    script = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        f"print(json.dumps({{name: getattr(s, name) for name in {names!r}}}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


DEPLOYMENT = {"DATABASE_URL": "postgres://u:p@db:5432/vitrine", "SECRET_KEY": "x" * 50}


def test_with_debug_off_https_is_on_by_default_and_each_part_can_be_turned_off(tmp_path):
    secure = security_settings(tmp_path, **DEPLOYMENT)
    assert secure["DEBUG"] is False
    assert secure["SECURE_SSL_REDIRECT"] and secure["SESSION_COOKIE_SECURE"] and secure["CSRF_COOKIE_SECURE"]
    assert secure["SECURE_HSTS_SECONDS"] == 3600
    assert secure["SECURE_PROXY_SSL_HEADER"] is None  # a proxy's header is trusted only when named
    assert secure["SILENCED_SYSTEM_CHECKS"] == []

    plain = security_settings(tmp_path, VITRINE_HTTPS="0", **DEPLOYMENT)
    assert not plain["SECURE_SSL_REDIRECT"] and not plain["SESSION_COOKIE_SECURE"] and not plain["CSRF_COOKIE_SECURE"]
    assert plain["SECURE_HSTS_SECONDS"] == 0

    parts = security_settings(
        tmp_path,
        VITRINE_SSL_REDIRECT="0",  # the proxy redirects
        VITRINE_HSTS_SECONDS="31536000",
        VITRINE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO",
        VITRINE_HSTS_PRELOAD="0",
        **DEPLOYMENT,
    )
    assert not parts["SECURE_SSL_REDIRECT"] and parts["SESSION_COOKIE_SECURE"] and parts["CSRF_COOKIE_SECURE"]
    assert parts["SECURE_HSTS_SECONDS"] == 31536000
    assert parts["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert parts["SILENCED_SYSTEM_CHECKS"] == ["security.W021"]
    cookies = security_settings(tmp_path, VITRINE_SECURE_COOKIES="0", **DEPLOYMENT)
    assert cookies["SECURE_SSL_REDIRECT"] and not cookies["SESSION_COOKIE_SECURE"] and not cookies["CSRF_COOKIE_SECURE"]


def test_compose_over_plain_http_is_two_lines_of_env(tmp_path):
    """No TLS proxy in front (compose tried on localhost): VITRINE_HTTPS=0 and an empty
    VITRINE_PROXY_SSL_HEADER in .env, as the compose file's comment says."""
    environment = compose_environment(
        "web", {"SECRET_KEY": "x" * 50, "VITRINE_HTTPS": "0", "VITRINE_PROXY_SSL_HEADER": ""}
    )
    plain = security_settings(tmp_path, **environment)
    assert not plain["SECURE_SSL_REDIRECT"] and not plain["SESSION_COOKIE_SECURE"] and not plain["CSRF_COOKIE_SECURE"]
    assert plain["SECURE_HSTS_SECONDS"] == 0
    assert plain["SECURE_PROXY_SSL_HEADER"] is None


def test_the_embedded_mode_serves_plain_http(tmp_path):
    embedded = security_settings(tmp_path)
    assert embedded["DEBUG"] is True
    assert not embedded["SECURE_SSL_REDIRECT"] and not embedded["SESSION_COOKIE_SECURE"]
    assert embedded["SECURE_HSTS_SECONDS"] == 0


def test_with_https_on_http_is_redirected_but_the_health_check_answers(db, settings):
    """Load balancers and monitors ask /api/v1/health over plain http from inside; a proxy's
    X-Forwarded-Proto counts only once VITRINE_PROXY_SSL_HEADER names it."""
    from django.test import Client

    settings.SECURE_SSL_REDIRECT = True
    page = Client().get("/")
    assert (page.status_code, page["Location"]) == (301, "https://testserver/")
    assert Client().get("/api/v1/health").status_code == 200
    assert Client().get("/", headers={"X-Forwarded-Proto": "https"}).status_code == 301

    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert Client().get("/", headers={"X-Forwarded-Proto": "https"}).status_code == 200
