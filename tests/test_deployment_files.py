"""No Docker engine runs here, so the production files are checked by reading them:
every command, module, file and setting they name must exist in the project."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import yaml
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
SETTINGS_SOURCE = (ROOT / "searchsite" / "settings.py").read_text()


def test_the_stack_has_its_seven_services():
    assert set(SERVICES) == {"web", "worker", "feeds", "beat", "redis", "qdrant", "postgres"}


def consumed_queues() -> dict[str, set[str]]:
    """Each Celery worker service's queues."""
    queues = {}
    for name, service in SERVICES.items():
        command = service.get("command") or []
        if command[:4] == ["celery", "-A", "searchsite", "worker"]:
            queues[name] = set(command[command.index("-Q") + 1].split(","))
    return queues


def test_beat_schedules_registered_tasks_on_queues_a_worker_consumes():
    from searchsite.celery import app

    command = SERVICES["beat"]["command"]
    assert command[:4] == ["celery", "-A", "searchsite", "beat"]
    assert SERVICES["beat"]["environment"] == SERVICES["worker"]["environment"]  # same broker, same stores
    schedule = settings.CELERY_BEAT_SCHEDULE
    assert {entry["task"] for entry in schedule.values()} == {
        "embeddings.tasks.flush_outbox",
        "embeddings.tasks.reconcile_index",
        "catalog.tasks.resume_stalled_imports",
        "analytics.tasks.prune",
    }
    assert schedule["reconcile"]["schedule"] == settings.VITRINE_RECONCILE_MINUTES * 60
    assert schedule["outbox"]["schedule"] == settings.VITRINE_OUTBOX_SECONDS
    app.loader.import_default_modules()
    consumed = set().union(*consumed_queues().values())
    for entry in schedule.values():
        assert entry["task"] in app.tasks
        assert app.amqp.router.route({}, entry["task"])["queue"].name in consumed


def test_feed_imports_and_embedding_have_workers_of_their_own():
    from searchsite.celery import app

    app.loader.import_default_modules()
    queues = consumed_queues()
    embed = app.amqp.router.route({}, "embeddings.tasks.embed_images")["queue"].name
    feed = app.amqp.router.route({}, "catalog.tasks.import_feed")["queue"].name
    (embedding_worker,) = [name for name, consumed in queues.items() if embed in consumed]
    (feed_worker,) = [name for name, consumed in queues.items() if feed in consumed]
    assert embedding_worker != feed_worker


@pytest.mark.parametrize("name", ["redis", "qdrant", "postgres"])
def test_third_party_images_are_pinned_to_a_version(name):
    image = SERVICES[name]["image"]
    tag = image.rsplit(":", 1)[1]
    assert re.fullmatch(r"v?\d+\.\d+(\.\d+)?(-alpine)?", tag), image


def test_the_qdrant_server_is_the_minor_version_of_the_installed_client():
    from importlib.metadata import version

    server = re.match(r"v(\d+)\.(\d+)", SERVICES["qdrant"]["image"].rsplit(":", 1)[1]).groups()
    client = version("qdrant-client").split(".")[:2]
    assert list(server) == client


def test_the_web_runs_migrations_and_gunicorn_on_the_project_wsgi_module():
    command = " ".join(SERVICES["web"]["command"])
    assert "python manage.py migrate --noinput" in command
    assert (ROOT / "manage.py").is_file()
    module = re.search(r"gunicorn (\S+)", command).group(1)
    assert hasattr(importlib.import_module(module), "application")


def test_the_workers_consume_every_queue_the_tasks_are_routed_to():
    command = SERVICES["worker"]["command"]
    app_module = command[command.index("-A") + 1]
    assert importlib.import_module(app_module).celery_app.main == "vitrine"
    consumed = set().union(*consumed_queues().values())
    assert {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()} == consumed


def test_every_environment_variable_given_to_vitrine_is_read_by_the_settings():
    environment = SERVICES["web"]["environment"]
    # The same model, stores and secrets; only the torch threads differ by role (the web
    # encodes one query per gunicorn worker, the Celery worker batches of photos).
    per_process = {"VITRINE_TORCH_THREADS"}
    shared = {name: value for name, value in environment.items() if name not in per_process}
    assert shared == SERVICES["worker"]["environment"]
    assert environment["VITRINE_TORCH_THREADS"] == "1"
    for name in environment:
        assert f'"{name}"' in SETTINGS_SOURCE or name.startswith("HF_"), f"{name} is not read by settings.py"


def test_production_uses_the_production_model_and_all_servers():
    environment = SERVICES["web"]["environment"]
    assert "ViT-B-32" in environment["VITRINE_CLIP_MODEL"]
    assert "laion2b_s34b_b79k" in environment["VITRINE_CLIP_PRETRAINED"]
    assert environment["DATABASE_URL"].startswith("postgres://")
    assert environment["CELERY_BROKER_URL"].startswith("redis://redis:")
    assert environment["QDRANT_URL"] == "http://qdrant:6333"
    assert environment["DEBUG"] == "0"


def test_named_volumes_hold_media_models_qdrant_and_postgres():
    declared = set(COMPOSE["volumes"])
    used = {volume.split(":")[0] for service in SERVICES.values() for volume in service.get("volumes", [])}
    assert {"media", "models", "qdrant", "postgres"} <= used <= declared
    mounts = dict(volume.split(":") for volume in SERVICES["web"]["volumes"])
    assert mounts["media"] == SERVICES["web"]["environment"]["VITRINE_MEDIA_DIR"]
    assert mounts["models"] == SERVICES["web"]["environment"]["VITRINE_MODEL_CACHE_DIR"]


def test_the_dockerfile_copies_only_what_exists():
    dockerfile = (ROOT / "Dockerfile").read_text()
    for sources in re.findall(r"^COPY (.+) \S+$", dockerfile, flags=re.MULTILINE):
        for source in sources.split():
            assert (ROOT / source).exists(), f"Dockerfile copies {source}, which is not in the project"


def test_the_image_holds_every_app_and_the_package_lists_them():
    from django.conf import settings

    apps = {name for name in settings.INSTALLED_APPS if (ROOT / name / "apps.py").exists()} | {"searchsite"}
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = {
        source
        for sources in re.findall(r"^COPY (.+) \S+$", dockerfile, flags=re.MULTILINE)
        for source in sources.split()
    }
    assert apps <= copied
    packaged = re.search(r"^include = \[(.+)\]$", (ROOT / "pyproject.toml").read_text(), flags=re.MULTILINE)[1]
    assert {name.strip('" *') for name in packaged.split(",")} == apps


def test_every_setting_read_from_the_environment_is_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    sources = SETTINGS_SOURCE + (ROOT / "embeddings" / "model.py").read_text()
    names = set(re.findall(r'env_\w+\(\s*"([A-Z][A-Z0-9_]+)"', sources))
    names |= set(re.findall(r'os\.environ\.get\("([A-Z][A-Z0-9_]+)"', sources))
    assert len(names) > 20
    missing = sorted(name for name in names if f"`{name}`" not in readme)
    assert missing == []


def test_gunicorn_refuses_several_workers_on_the_embedded_store(tmp_path):
    """Read from the working directory (gunicorn.conf.py), as compose's web runs it."""
    import os
    import subprocess
    import sys

    environment = {key: value for key, value in os.environ.items() if key not in ("QDRANT_URL", "VITRINE_INDEX_SERVER")}
    environment["VITRINE_DATA_DIR"] = str(tmp_path)
    command = [sys.executable, "-m", "gunicorn", "searchsite.wsgi", "--bind", "127.0.0.1:0", "--workers", "2"]
    refused = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0
    assert "2 gunicorn workers would share the embedded vector store" in refused.stderr
    assert "--workers 1 --threads" in refused.stderr and "serve_index" in refused.stderr
