"""The Content-Security-Policy every response carries (settings.CONTENT_SECURITY_POLICY,
django-csp), and pages it can be enforced on: no inline script, style or event handler
in the shoppers' pages, the admin or the API docs. The browser tests (tests/test_browser.py)
load the same pages in chromium and fail on any violation it reports."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from catalog import services
from tests import images

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parent.parent

POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data: blob:",
    "font-src": "'self'",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'self'",
    "frame-ancestors": "'none'",
    "form-action": "'self'",
}


def directives(header: str) -> dict[str, str]:
    return dict(part.strip().split(" ", 1) for part in header.split(";"))


INLINE = {
    "inline script": re.compile(r"<script\b(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE),
    "style element": re.compile(r"<style\b", re.IGNORECASE),
    "style attribute": re.compile(r"<[a-z][^>]*\sstyle\s*=", re.IGNORECASE),
    "event handler attribute": re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.IGNORECASE),
    "javascript: URL": re.compile(r"javascript:", re.IGNORECASE),
}


def inline_code(html: str) -> list[str]:
    """What the policy would refuse in a page: inline scripts, styles and handlers."""
    return [f"{name}: {match.group(0)[:120]}" for name, pattern in INLINE.items() for match in pattern.finditer(html)]


@pytest.fixture
def shop():
    products = []
    for number, colour in enumerate(["red", "blue"]):
        product = services.product_upsert(
            external_id=f"sku-{number}",
            title=f"Thing {number}",
            category="kitchen",
            price=5 + number,
            currency="EUR",
            attributes={"colour": colour},
        ).product
        services.image_create(product=product, content=images.noise_jpeg(number))
        products.append(product)
    return products


@pytest.fixture
def boss():
    client = Client()
    client.force_login(User.objects.create_superuser("boss", "boss@shop.example", "a-long-test-password-1"))
    return client


def test_an_html_page_and_a_json_answer_carry_the_policy(shop):
    page = Client().get("/", {"q": "thing"})
    assert page["Content-Type"].startswith("text/html")
    assert directives(page["Content-Security-Policy"]) == POLICY
    assert "Content-Security-Policy-Report-Only" not in page

    # On JSON it is harmless (nothing there runs or loads), and the same header.
    answer = Client().get("/api/v1/health")
    assert answer.status_code == 200 and answer["Content-Type"] == "application/json"
    assert directives(answer["Content-Security-Policy"]) == POLICY
    assert answer.json()["status"] in {"ok", "degraded"}


def test_the_shoppers_pages_hold_no_inline_code(shop):
    client = Client()
    for path in ("/", "/?q=thing", reverse("product", args=[shop[0].pk])):
        response = client.get(path)
        assert response.status_code == 200, path
        assert inline_code(response.content.decode()) == [], path


def test_the_admin_pages_hold_no_inline_code(shop, boss):
    assert inline_code(Client().get("/admin/login/").content.decode()) == []
    pages = ["/admin/", reverse("bulk-upload"), reverse("index-health")]
    for model in admin.site._registry:
        info = (model._meta.app_label, model._meta.model_name)
        pages.append(reverse("admin:{}_{}_changelist".format(*info)))
        pages.append(reverse("admin:{}_{}_add".format(*info)))
    pages.append(reverse("admin:catalog_product_change", args=[shop[0].pk]))
    pages.append(reverse("admin:catalog_productimage_change", args=[shop[0].images.get().pk]))
    checked = 0
    for path in pages:
        response = boss.get(path)
        assert response.status_code in (200, 403), path  # 403: models that are added elsewhere
        if response.status_code == 200:
            assert inline_code(response.content.decode()) == [], path
            checked += 1
    assert checked > 10

    # The page that shows a new API key once: its "Copy" works from static/vitrine/admin.js.
    created = boss.post(
        "/admin/api/apikey/add/",
        {"name": "storefront", "scopes": ["search"], "rate": "", "expires_at_0": "", "expires_at_1": ""},
    ).content.decode()
    assert 'data-copy-from="new-api-key"' in created
    assert inline_code(created) == []


def test_the_api_docs_run_no_inline_script_and_redoc_styles_itself_with_a_nonce(db):
    swagger = Client().get("/api/docs/")
    html = swagger.content.decode()
    assert inline_code(html) == []
    assert directives(swagger["Content-Security-Policy"]) == POLICY
    (script,) = re.findall(r'<script src="(/api/docs/\?script=[^"]*)"', html)
    start = Client().get(script)
    assert start["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle(" in start.content.decode()

    nonces = []
    for _ in range(2):
        redoc = Client().get("/api/redoc/")
        html = redoc.content.decode()
        assert inline_code(html) == []
        assert "fonts.googleapis.com" not in html and "https://" not in html
        policy = directives(redoc["Content-Security-Policy"])
        (nonce,) = re.findall(r'<script src="/static/vitrine/redoc.js" nonce="([^"]+)"', html)
        style = policy.pop("style-src").split()
        assert style[:2] == ["'self'", f"'nonce-{nonce}'"] and all(s.startswith("'sha256-") for s in style[2:])
        assert policy.pop("worker-src") == "'self' blob:"  # ReDoc's search index
        assert policy == {k: v for k, v in POLICY.items() if k != "style-src"}, "no outside host: images, fonts…"
        nonces.append(nonce)
    assert nonces[0] != nonces[1]


def policy_in_subprocess(**env: str) -> str:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("VITRINE_CSP_")}
    environment.update(DJANGO_SETTINGS_MODULE="searchsite.settings", **env)
    script = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.CONTENT_SECURITY_POLICY); print(s.CONTENT_SECURITY_POLICY_REPORT_ONLY)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_policy_can_be_tried_in_report_only_mode_with_reports_sent_somewhere():
    enforced, report_only = policy_in_subprocess().splitlines()
    assert "'self'" in enforced and report_only == "None"
    enforced, report_only = policy_in_subprocess(
        VITRINE_CSP_REPORT_ONLY="1", VITRINE_CSP_REPORT_URI="https://reports.shop.example/csp"
    ).splitlines()
    assert enforced == "None"
    assert "'report-uri': 'https://reports.shop.example/csp'" in report_only
    assert "'script-src': [\"'self'\"]" in report_only
