"""torch, open_clip and transformers stay out of the web import path (they cost seconds and ~1 GB)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_web_modules_do_not_import_torch():
    script = (
        "import os, sys, django; os.environ['DJANGO_SETTINGS_MODULE'] = 'searchsite.settings'; django.setup()\n"
        "import catalog.models, catalog.admin, api.views, storefront.views, searchsite.urls\n"
        "import embeddings.tasks, embeddings.admin, embeddings.receivers\n"
        "from django.urls import resolve; resolve('/')\n"
        "print(sorted(m for m in ('torch', 'open_clip', 'torchvision', 'transformers') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
