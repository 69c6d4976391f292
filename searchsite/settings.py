"""Vitrine settings.

Everything comes from the environment through the typed helpers in ``searchsite.env``.
With no environment at all Vitrine runs in the *embedded mode*: SQLite and Qdrant's local
storage under ``VITRINE_DATA_DIR``, Celery tasks run in-process, the small project model.
Production differs only by env (``DATABASE_URL``, ``CELERY_BROKER_URL``, ``QDRANT_URL``…).
Every variable is listed in the README's configuration table.
"""

from __future__ import annotations

from pathlib import Path

import dj_database_url
from csp.constants import NONE as CSP_NONE
from csp.constants import SELF as CSP_SELF
from django.core.exceptions import ImproperlyConfigured

from searchsite.env import (
    env_bool,
    env_choice,
    env_float,
    env_http_url,
    env_int,
    env_is_set,
    env_list,
    env_path,
    env_pattern,
    env_rate,
    env_str,
    env_weights,
)

BASE_DIR = Path(__file__).resolve().parent.parent

DATA_DIR = env_path("VITRINE_DATA_DIR", BASE_DIR / "var")

# --- Django core -------------------------------------------------------------------------

DATABASE_URL = env_str("DATABASE_URL")
IS_EMBEDDED_DATABASE = not DATABASE_URL

# Embedded mode is a local demo, so it defaults to DEBUG; a deployment (DATABASE_URL set)
# defaults to DEBUG off and must then bring its own SECRET_KEY.
DEBUG = env_bool("DEBUG", IS_EMBEDDED_DATABASE)

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is required when DEBUG is off. Set it to a long random string, "
            "for example: python -c 'import secrets; print(secrets.token_urlsafe(50))'"
        )
    SECRET_KEY = "vitrine-embedded-insecure-key-for-local-use-only"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# --- HTTPS ---------------------------------------------------------------------------------
# A deployment (DEBUG off) is served over HTTPS only, behind a TLS-terminating proxy: http
# is redirected, the session and CSRF cookies are sent over HTTPS only, HSTS is on. The
# embedded mode (DEBUG on) serves plain http. Each part can be set on its own; to try a
# deployment over plain http (docker compose on localhost, no proxy), set VITRINE_HTTPS=0.
VITRINE_HTTPS = env_bool("VITRINE_HTTPS", not DEBUG)
SECURE_SSL_REDIRECT = env_bool("VITRINE_SSL_REDIRECT", VITRINE_HTTPS)
# Load balancers and monitors ask over plain http, from inside: answer, not redirect.
SECURE_REDIRECT_EXEMPT = [r"^api/v1/health$"]
SESSION_COOKIE_SECURE = env_bool("VITRINE_SECURE_COOKIES", VITRINE_HTTPS)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
LANGUAGE_COOKIE_SECURE = SESSION_COOKIE_SECURE
# An hour to start with: raise it (a year: 31536000) once every subdomain serves HTTPS.
SECURE_HSTS_SECONDS = env_int("VITRINE_HSTS_SECONDS", 3600 if VITRINE_HTTPS else 0, minimum=0)
# Both are hard to take back (browsers remember them): off unless set. check --deploy warns
# while they are off (security.W005, security.W021) unless the variable says so explicitly:
# VITRINE_HSTS_INCLUDE_SUBDOMAINS=0 is a decision taken, not a setting forgotten (the
# compose file takes it; a shop's other subdomains may not all serve HTTPS).
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("VITRINE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("VITRINE_HSTS_PRELOAD", False)
SILENCED_SYSTEM_CHECKS = [
    check
    for name, check in (("VITRINE_HSTS_INCLUDE_SUBDOMAINS", "security.W005"), ("VITRINE_HSTS_PRELOAD", "security.W021"))
    if env_is_set(name) and not env_bool(name, False)
]
# The header a TLS-terminating proxy sets, e.g. HTTP_X_FORWARDED_PROTO (it must overwrite
# what clients send); requests carrying it with "https" count as secure. Without it, a site
# behind a proxy with VITRINE_HTTPS on would redirect every request to itself.
_proxy_header = env_str("VITRINE_PROXY_SSL_HEADER")
SECURE_PROXY_SSL_HEADER = (_proxy_header, "https") if _proxy_header else None

# --- Content-Security-Policy (django-csp) ---------------------------------------------
# Only this site's own scripts, styles, fonts and requests; images also as data: URLs (the
# favicon, the icons in Swagger UI's CSS). No inline script or style anywhere: the pages
# and the admin keep theirs in static/; the API docs' exceptions are in api/docs.py (a
# per-response nonce for ReDoc's generated styles). Not framed, no plugins, forms post here.
# VITRINE_CSP_REPORT_ONLY=1 sends it as Content-Security-Policy-Report-Only (the browser
# reports, blocks nothing: to try a change); VITRINE_CSP_REPORT_URI: where reports go.
CONTENT_SECURITY_POLICY_DIRECTIVES = {
    "default-src": [CSP_SELF],
    "script-src": [CSP_SELF],
    "style-src": [CSP_SELF],
    # blob: the photo a shopper chose, shown (and cropped) before it is sent.
    "img-src": [CSP_SELF, "data:", "blob:"],
    "font-src": [CSP_SELF],
    "connect-src": [CSP_SELF],
    "object-src": [CSP_NONE],
    "base-uri": [CSP_SELF],
    "frame-ancestors": [CSP_NONE],
    "form-action": [CSP_SELF],
}
_csp_report_uri = env_str("VITRINE_CSP_REPORT_URI")
if _csp_report_uri:
    CONTENT_SECURITY_POLICY_DIRECTIVES["report-uri"] = _csp_report_uri
if env_bool("VITRINE_CSP_REPORT_ONLY", False):
    CONTENT_SECURITY_POLICY = None
    CONTENT_SECURITY_POLICY_REPORT_ONLY = {"DIRECTIVES": CONTENT_SECURITY_POLICY_DIRECTIVES}
else:
    CONTENT_SECURITY_POLICY = {"DIRECTIVES": CONTENT_SECURITY_POLICY_DIRECTIVES}
    CONTENT_SECURITY_POLICY_REPORT_ONLY = None

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    # runserver (make run) leaves static files to WhiteNoise's middleware, as in production:
    # compressed, with a cache lifetime.
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    # Swagger UI's files, served from here: /api/docs/ works with no internet.
    "drf_spectacular_sidecar",
    "corsheaders",
    # The Content-Security-Policy header (its system checks; the policy is below).
    "csp",
    # The domain, then what is built on it (catalog ← embeddings ← the faces); see docs/architecture.md.
    "catalog",
    "embeddings",
    # What shoppers searched for and clicked (no personal data), written by the faces.
    "analytics",
    "storefront",
    "api",
]

MIDDLEWARE = [
    # First: it times everything below (searchsite/watchdog.py).
    "searchsite.watchdog.SlowRequestMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Text responses gzipped (pages, API answers, CSS, JS: not photos); before WhiteNoise, which
    # answers static files itself. Why this is safe from BREACH: searchsite/compression.py.
    "searchsite.compression.TextGZipMiddleware",
    # Every response, static files too; before anything that renders (a nonce asked for
    # while rendering goes into the header).
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # After sessions, before CommonMiddleware (as Django's docs ask).
    "searchsite.middleware.ShopperLocaleMiddleware",
    # Before CommonMiddleware, so preflight and error responses carry the CORS headers too.
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.common.CommonMiddleware",
    "searchsite.middleware.ShopperNotFoundMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # After authentication (staff get larger limits), before anything reads the body.
    "searchsite.middleware.RequestSizeLimitMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, so it sees the views' exceptions first: an outage is a 503, not a 500.
    "searchsite.middleware.OutageMiddleware",
]

ROOT_URLCONF = "searchsite.urls"
WSGI_APPLICATION = "searchsite.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "embeddings.context_processors.embedding_model",
            ],
        },
    },
]

if DATABASE_URL:
    try:
        DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
        if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
            # A database that stopped answering fails a request in seconds (503), not
            # after the kernel's TCP timeout.
            DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
                "connect_timeout", env_int("VITRINE_DATABASE_CONNECT_TIMEOUT", 3, minimum=1)
            )
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL could not be parsed: {exc}") from None
else:
    (DATA_DIR / "staticfiles").mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "vitrine.sqlite3",
            # Each thread keeps its connection between requests, as on PostgreSQL: opening
            # one (connect, then the PRAGMAs below) cost every request ~0.45 ms.
            "CONN_MAX_AGE": 60,
            # Several threads of the embedded server write; wait for the lock instead of
            # failing with "database is locked".
            # WAL lets readers and a writer work at once (web + worker) and, with
            # synchronous=NORMAL, makes each commit cheap (no fsync per transaction).
            # https://www.sqlite.org/wal.html
            "OPTIONS": {
                "timeout": 20,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# The shoppers' pages and the admin speak English and Simplified Chinese: the language
# comes from the shopper's choice (the language switch sets a cookie), else the
# browser's Accept-Language (zh, zh-CN, zh-TW… → 简体中文), else English. The API speaks
# English (its error codes are the contract). Catalogs: locale/, compiled by make.
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600
LANGUAGE_COOKIE_SAMESITE = "Lax"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env_path("VITRINE_STATIC_ROOT", DATA_DIR / "staticfiles")
# Serve static files straight from the source folders too, so no collectstatic step is
# needed to run (the Docker image still collects them, for compression and caching).
WHITENOISE_USE_FINDERS = True
# The Docker image collects static files with VITRINE_STATIC_MANIFEST=1: names carrying a
# hash of the content (cached forever: "immutable"), each file also stored gzipped and, with
# the brotli package installed, brotli-compressed. Off (make run, tests, a checkout run
# with gunicorn): the source files, as they are, with no collectstatic step.
# https://whitenoise.readthedocs.io/en/stable/django.html#add-compression-and-caching-support
VITRINE_STATIC_MANIFEST = env_bool("VITRINE_STATIC_MANIFEST", False)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if VITRINE_STATIC_MANIFEST
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
# Seconds browsers keep CSS and JavaScript without asking again, where their names carry
# no hash (WhiteNoise's default under DEBUG is 0: every page view asked for them again).
# An hour: a changed file reaches everyone within one. Hashed names: a year, immutable.
WHITENOISE_MAX_AGE = env_int("VITRINE_STATIC_MAX_AGE", 3600, minimum=0)

MEDIA_URL = "/media/"
MEDIA_ROOT = env_path("VITRINE_MEDIA_DIR", DATA_DIR / "media")
# Django serves uploaded images itself unless a proxy in front does (then set it to 0).
VITRINE_SERVE_MEDIA = env_bool("VITRINE_SERVE_MEDIA", True)

# Larger images are refused (HTTP 413); larger request bodies before Django reads them.
VITRINE_MAX_IMAGE_BYTES = env_int("VITRINE_MAX_IMAGE_BYTES", 25 * 1024 * 1024, minimum=1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
# Pillow's decompression-bomb guard: an image with more pixels than this is rejected.
# https://pillow.readthedocs.io/en/stable/reference/Image.html#PIL.Image.open
VITRINE_MAX_IMAGE_PIXELS = env_int("VITRINE_MAX_IMAGE_PIXELS", 64_000_000, minimum=1)
# Feeds uploaded in the admin (the import_feed command reads files of any size).
VITRINE_MAX_FEED_BYTES = env_int("VITRINE_MAX_FEED_BYTES", 50 * 1024 * 1024, minimum=1024)
# The admin's bulk upload: files per request (without JavaScript the form sends them all
# at once), and what a zip may hold and unpack to.
VITRINE_MAX_UPLOAD_FILES = env_int("VITRINE_MAX_UPLOAD_FILES", 200, minimum=1)
VITRINE_MAX_ZIP_MEMBERS = env_int("VITRINE_MAX_ZIP_MEMBERS", 2000, minimum=1)
VITRINE_MAX_ZIP_BYTES = env_int("VITRINE_MAX_ZIP_BYTES", 1024 * 1024 * 1024, minimum=1024)
DATA_UPLOAD_MAX_NUMBER_FILES = VITRINE_MAX_UPLOAD_FILES

# Server-side downloads of image URLs (search by URL; later the API and feeds): public
# addresses only unless a network is allowed here (an internal image CDN, tests).
VITRINE_FETCH_TIMEOUT = env_float("VITRINE_FETCH_TIMEOUT", 5.0, minimum=0.1)
VITRINE_FETCH_TOTAL_TIMEOUT = env_float("VITRINE_FETCH_TOTAL_TIMEOUT", 20.0, minimum=0.1)
VITRINE_FETCH_MAX_REDIRECTS = env_int("VITRINE_FETCH_MAX_REDIRECTS", 3, minimum=0, maximum=10)
VITRINE_FETCH_ALLOWED_NETWORKS = env_list("VITRINE_FETCH_ALLOWED_NETWORKS", [])

# --- The model (only embeddings.model reads these) --------------------------------------

# The embedded default is the project's own demo model, trained by `manage.py train_clip`
# on the demo renderer and shipped in the repository (see README, "Search quality").
DEMO_CHECKPOINT_DIR = BASE_DIR / "embeddings" / "checkpoints" / "vitrine-demo"
VITRINE_CLIP_MODEL = env_str("VITRINE_CLIP_MODEL", "vitrine-demo")
VITRINE_CLIP_PRETRAINED = env_str("VITRINE_CLIP_PRETRAINED", f"local-dir:{DEMO_CHECKPOINT_DIR}")
VITRINE_DEVICE = env_str("VITRINE_DEVICE", "auto").lower()
# transformers models (VITRINE_CLIP_MODEL=hf-transformers:…) run in float16 on a CUDA device
# (half the memory, about twice the speed; false: float32). CPUs always run float32.
VITRINE_MODEL_FP16 = env_bool("VITRINE_MODEL_FP16", True)
VITRINE_MODEL_CACHE_DIR = env_path("VITRINE_MODEL_CACHE_DIR", DATA_DIR / "models")
# How long to wait for the model hub before giving up on a download; open_clip's own
# retries can otherwise take minutes when the network is closed.
VITRINE_MODEL_DOWNLOAD_TIMEOUT = env_float("VITRINE_MODEL_DOWNLOAD_TIMEOUT", 5.0, minimum=0.1)
# Web servers load the model in the background at start instead of on the first search.
VITRINE_PRELOAD_MODEL = env_bool("VITRINE_PRELOAD_MODEL", True)
# torch's threads per process (0: torch's default, one per core). Several processes on a
# small machine (web, workers) do better with 1 each than with two that contend.
VITRINE_TORCH_THREADS = env_int("VITRINE_TORCH_THREADS", 0, minimum=0, maximum=256)
# Images per forward pass. 32 keeps a ViT-B-32 batch under ~1 GB on CPU and is where the
# throughput measured on 2 cores stops improving (see ARCHITECTURE.md).
VITRINE_EMBED_BATCH_SIZE = env_int("VITRINE_EMBED_BATCH_SIZE", 32, minimum=1, maximum=1024)
# A trickle of uploads (a task with fewer images than a batch) is coalesced: with a broker
# its task waits this many seconds, and a task takes along up to a batch of other images
# still waiting, so single uploads share forward passes. 0: one task per upload, alone.
VITRINE_EMBED_COALESCE_SECONDS = env_float("VITRINE_EMBED_COALESCE_SECONDS", 2.0, minimum=0, maximum=60)
# Threads that read, decode and preprocess photos while the model encodes the previous
# ones (Pillow and torch release the GIL). 0: none (all in the encoding thread).
VITRINE_DECODE_THREADS = env_int("VITRINE_DECODE_THREADS", 2, minimum=0, maximum=64)
# JPEGs are decoded at a reduced scale (draft mode) that keeps both sides at least this
# many times the model's input size; 0 decodes every pixel.
VITRINE_DECODE_DRAFT_FACTOR = env_int("VITRINE_DECODE_DRAFT_FACTOR", 2, minimum=0, maximum=16)
# An image whose nearest older image scores at least this is flagged as its duplicate.
# 0.997 is measured on the demo model (benchmarks/near_duplicates.py): re-saved and resized
# copies score 0.9987 or more, another photo of the same product at most 0.9948. Measure
# again for another model.
VITRINE_NEAR_DUPLICATE_THRESHOLD = env_float("VITRINE_NEAR_DUPLICATE_THRESHOLD", 0.997, minimum=0, maximum=1.01)
# Zero-shot tags: a facet value is suggested when its probability among the facet's values
# reaches this (embeddings/tagging.py).
VITRINE_TAG_CONFIDENCE = env_float("VITRINE_TAG_CONFIDENCE", 0.6, minimum=0, maximum=1)

# --- The vector index (only embeddings.index reads these) -------------------------------

# Without QDRANT_URL the index runs in this process: Qdrant Edge (an HNSW engine with payload
# indexes), or qdrant-client's local mode (the server's code path, brute force: for tests).
VITRINE_INDEX_ENGINE = env_choice("VITRINE_INDEX_ENGINE", "edge", {"edge", "qdrant-local"})
VITRINE_INDEX_PATH = env_path("VITRINE_INDEX_PATH", DATA_DIR / "index")
# The HNSW graph (both engines): links per node and build effort; the search's candidate
# list (at least the results asked for; 256 found 99.9 % of the exact nearest 24 at 100k
# points where the engine's default found 90 %: benchmarks/index_options.py; 0: the
# engine's default). Collections smaller than
# VITRINE_INDEX_FULL_SCAN_KB kilobytes of vectors are scanned exactly (faster there).
# https://qdrant.tech/documentation/concepts/indexing/#vector-index
VITRINE_INDEX_HNSW_M = env_int("VITRINE_INDEX_HNSW_M", 16, minimum=4, maximum=128)
VITRINE_INDEX_HNSW_EF_CONSTRUCT = env_int("VITRINE_INDEX_HNSW_EF_CONSTRUCT", 100, minimum=4, maximum=1000)
VITRINE_INDEX_HNSW_EF = env_int("VITRINE_INDEX_HNSW_EF", 256, minimum=0, maximum=10_000)
# 2,000 KB: the graph from 8,000 points of 64 dimensions, 1,000 of 512. Qdrant's own 10,000
# left a 20k-product demo catalog on exact scans, 4x slower per query here (benchmarks/scale.py).
VITRINE_INDEX_FULL_SCAN_KB = env_int("VITRINE_INDEX_FULL_SCAN_KB", 2_000, minimum=1)
# int8 scalar quantization (4x less memory for vectors; results rescored with the originals).
# https://qdrant.tech/documentation/guides/quantization/
VITRINE_INDEX_QUANTIZATION = env_choice("VITRINE_INDEX_QUANTIZATION", "none", {"none", "int8"})
# Keep the original vectors on disk (memory-mapped) instead of in RAM.
VITRINE_INDEX_ON_DISK = env_bool("VITRINE_INDEX_ON_DISK", False)
QDRANT_URL = env_str("QDRANT_URL")
QDRANT_API_KEY = env_str("QDRANT_API_KEY")
# Seconds a write to a Qdrant server (or the index server) may take.
QDRANT_TIMEOUT = env_float("QDRANT_TIMEOUT", 10.0, minimum=0.1)
# Several processes on one machine without a Qdrant server: `manage.py serve_index` opens
# the embedded store and serves it at this host:port; the others (gunicorn's workers,
# Celery's) set it too and call it (embeddings/index/remote.py).
VITRINE_INDEX_SERVER = env_str("VITRINE_INDEX_SERVER")
# Search analytics (analytics/): every search and the clicks and purchases after it, no
# personal data; rows older than VITRINE_ANALYTICS_DAYS are pruned every day.
VITRINE_ANALYTICS = env_bool("VITRINE_ANALYTICS", True)
VITRINE_ANALYTICS_DAYS = env_int("VITRINE_ANALYTICS_DAYS", 90, minimum=1, maximum=3650)
# A request still running after this many seconds is logged with where it is (its stack);
# 0: off. searchsite/watchdog.py.
VITRINE_SLOW_REQUEST_SECONDS = env_float("VITRINE_SLOW_REQUEST_SECONDS", 10.0, minimum=0)
# Seconds a search waits for the index across the network (a Qdrant server's reads are
# rounded up to whole seconds): a hung store answers 503 in about this long.
VITRINE_INDEX_READ_TIMEOUT = env_float("VITRINE_INDEX_READ_TIMEOUT", 1.0, minimum=0.05, maximum=60)
# The circuit breaker: after this many failures in a row the index is not asked again for
# VITRINE_INDEX_BREAKER_SECONDS (calls fail at once, 503), then one call tries.
VITRINE_INDEX_BREAKER_FAILURES = env_int("VITRINE_INDEX_BREAKER_FAILURES", 3, minimum=1)
VITRINE_INDEX_BREAKER_SECONDS = env_float("VITRINE_INDEX_BREAKER_SECONDS", 10.0, minimum=0.1)
QDRANT_SHARDS = env_int("QDRANT_SHARDS", 1, minimum=1)
QDRANT_REPLICAS = env_int("QDRANT_REPLICAS", 1, minimum=1)
VITRINE_INDEX_ALIAS = env_str("VITRINE_INDEX_ALIAS", "vitrine-images")

# --- Search ------------------------------------------------------------------------------

# The relevance cutoff is calibrated per embedding space (embeddings/relevance.py) and can
# be overridden per space in the admin; these override it for every space.
VITRINE_TEXT_CUTOFF = env_float("VITRINE_TEXT_CUTOFF", None, minimum=-1, maximum=1)
VITRINE_IMAGE_CUTOFF = env_float("VITRINE_IMAGE_CUTOFF", None, minimum=-1, maximum=1)
# Products considered per query: the cutoff, filters, facet counts and sorting work on the
# nearest this many (a larger catalog's vaguest queries count "1000+").
VITRINE_SEARCH_CANDIDATES = env_int("VITRINE_SEARCH_CANDIDATES", 1000, minimum=10, maximum=10_000)
# Product attributes offered as facets when products have them (demo: colour, pattern).
VITRINE_FACET_ATTRIBUTES = env_list("VITRINE_FACET_ATTRIBUTES", ["colour", "pattern", "tags"])
# "More like this" (the product page, ?similar=, the API's similar products): products sharing
# these with the product come first, "category" being the product's field and the others
# attributes (the demo's "kind": a blue dotted bag's other bags before a blue dotted hat).
VITRINE_SIMILAR_KIND_FIELDS = env_list("VITRINE_SIMILAR_KIND_FIELDS", ["category", "kind", "type", "product_type"])
# Hybrid search: a keyword index (Qdrant sparse vectors, IDF-weighted) beside the vectors.
# Off: searches read the vectors alone (the keyword index is still written).
VITRINE_KEYWORD_SEARCH = env_bool("VITRINE_KEYWORD_SEARCH", True)
# Weights of each product field in the keyword side (0 leaves a field out).
VITRINE_KEYWORD_FIELD_WEIGHTS = env_weights(
    "VITRINE_KEYWORD_FIELD_WEIGHTS",
    {
        "title": 3.0,
        "brand": 3.0,
        "category": 2.0,
        "attributes": 2.0,
        "tags": 1.5,
        "description": 0.5,
        "external_id": 3.0,
    },
    known={"title", "brand", "category", "attributes", "tags", "description", "external_id"},
)
# How keyword and vector rankings are fused: reciprocal rank fusion or normalised scores.
VITRINE_SEARCH_FUSION = env_choice("VITRINE_SEARCH_FUSION", "rrf", {"rrf", "score"})
# "Show loosely related" reveals this many more results at a time.
VITRINE_LOOSE_BAND = env_int("VITRINE_LOOSE_BAND", 24, minimum=1, maximum=1000)
# Photos people search with are kept (downscaled) so a photo search has a shareable URL.
VITRINE_QUERY_PHOTO_DAYS = env_int("VITRINE_QUERY_PHOTO_DAYS", 7, minimum=1)

# --- Generative services (only embeddings.generative reads these) ----------------------

# Optional, each off while its URL is empty: nothing is sent anywhere then. A URL is an
# OpenAI-compatible API's base (https://api.openai.com/v1, http://127.0.0.1:11434/v1 for a
# local server) or the full endpoint.
# Captions: a vision chat model writes alt text and descriptions (English and Chinese) as
# suggestions a merchandiser accepts (admin, `manage.py caption --missing`).
VITRINE_CAPTION_API_URL = env_http_url("VITRINE_CAPTION_API_URL")
VITRINE_CAPTION_API_KEY = env_str("VITRINE_CAPTION_API_KEY", "")
VITRINE_CAPTION_MODEL = env_str("VITRINE_CAPTION_MODEL", "gpt-4o-mini")
VITRINE_CAPTION_TIMEOUT = env_float("VITRINE_CAPTION_TIMEOUT", 60.0, minimum=0.1)
VITRINE_CAPTION_RETRIES = env_int("VITRINE_CAPTION_RETRIES", 3, minimum=0, maximum=10)
# Calls a minute across all processes (counted in the shared cache); 0: no budget.
VITRINE_CAPTION_PER_MINUTE = env_int("VITRINE_CAPTION_PER_MINUTE", 60, minimum=0)
# "Imagine it": an image model draws what a shopper describes, and the picture is searched
# with like a photo. A shopper waits for it, so fewer retries.
VITRINE_IMAGE_API_URL = env_http_url("VITRINE_IMAGE_API_URL")
VITRINE_IMAGE_API_KEY = env_str("VITRINE_IMAGE_API_KEY", "")
VITRINE_IMAGE_MODEL = env_str("VITRINE_IMAGE_MODEL", "gpt-image-1")
VITRINE_IMAGE_SIZE = env_pattern(
    "VITRINE_IMAGE_SIZE", "1024x1024", r"\d{2,5}x\d{2,5}|auto", "a size like 1024x1024 (or auto)"
)
VITRINE_IMAGE_TIMEOUT = env_float("VITRINE_IMAGE_TIMEOUT", 60.0, minimum=0.1)
VITRINE_IMAGE_RETRIES = env_int("VITRINE_IMAGE_RETRIES", 1, minimum=0, maximum=10)
VITRINE_IMAGE_PER_MINUTE = env_int("VITRINE_IMAGE_PER_MINUTE", 10, minimum=0)
# The longest description sent; a picture drawn for a description is reused this long.
VITRINE_IMAGINE_MAX_CHARS = env_int("VITRINE_IMAGINE_MAX_CHARS", 300, minimum=10, maximum=4000)
VITRINE_IMAGINE_CACHE_SECONDS = env_int("VITRINE_IMAGINE_CACHE_SECONDS", 86400, minimum=0)

# --- Celery -----------------------------------------------------------------------------
# https://docs.celeryq.dev/en/stable/django/first-steps-with-django.html

# No broker: run tasks in-process right after commit (the embedded mode). The in-memory
# transport is never used then; it only keeps Celery from looking for one on localhost.
CELERY_TASK_ALWAYS_EAGER = not env_str("CELERY_BROKER_URL")
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or "memory://localhost/"
# Propagating would turn an eager retry into an exception in the caller; tasks record
# their own failures on the rows instead.
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ROUTES = {
    # Beat's short scheduled tasks: consumed by the embedding worker between its batches
    # (a feed import can hold the catalog worker for hours).
    "embeddings.tasks.reconcile_index": {"queue": "maintenance"},
    "embeddings.tasks.flush_outbox": {"queue": "maintenance"},
    "catalog.tasks.resume_stalled_imports": {"queue": "maintenance"},
    "analytics.tasks.prune": {"queue": "maintenance"},
    # Calls to a remote vision model: seconds each, so not in the embedding worker's way.
    "embeddings.tasks.caption_images": {"queue": "captions"},
    "embeddings.tasks.*": {"queue": "embeddings"},
    "catalog.tasks.*": {"queue": "catalog"},
}
# Celery beat (compose's "beat" service) runs reconcile this often: images whose task was
# lost in an outage are queued again. 0: no schedule (reconcile by hand or from the admin).
VITRINE_RECONCILE_MINUTES = env_int("VITRINE_RECONCILE_MINUTES", 10, minimum=0, maximum=24 * 60)
# An image queued this long ago and still pending lost its task (reconcile queues it again).
# Above the longest a batch waits for its retries (RETRY_CAP_SECONDS in embeddings.tasks).
VITRINE_STALE_PENDING_SECONDS = env_int("VITRINE_STALE_PENDING_SECONDS", 900, minimum=1)
# Beat sends the outbox this often: embedding tasks that a broker outage kept from being
# sent (the upload itself succeeded; its images stay pending until then).
VITRINE_OUTBOX_SECONDS = env_int("VITRINE_OUTBOX_SECONDS", 60, minimum=1, maximum=3600)
CELERY_BEAT_SCHEDULE = {
    "outbox": {"task": "embeddings.tasks.flush_outbox", "schedule": float(VITRINE_OUTBOX_SECONDS)},
    # Search analytics older than VITRINE_ANALYTICS_DAYS are deleted once a day.
    "analytics-prune": {"task": "analytics.tasks.prune", "schedule": 24 * 3600.0},
    **(
        {
            "reconcile": {"task": "embeddings.tasks.reconcile_index", "schedule": VITRINE_RECONCILE_MINUTES * 60.0},
            "feeds": {"task": "catalog.tasks.resume_stalled_imports", "schedule": VITRINE_RECONCILE_MINUTES * 60.0},
        }
        if VITRINE_RECONCILE_MINUTES
        else {}
    ),
}
CELERY_TASK_DEFAULT_QUEUE = "default"
# One batch at a time per worker process: batches are heavy, and a prefetched batch would
# wait behind the running one instead of going to an idle worker.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# A message whose worker died is handed out again after this many seconds (Redis
# transport). It must exceed a batch's hard time limit (660 s; system check vitrine.W001),
# or a slow batch runs twice (harmless: tasks are idempotent, but wasted work). A feed
# import outlasts it but is claimed in the database, so a second delivery does nothing.
# Workers look for such messages every CELERY_BROKER_RESTORE_INTERVAL seconds (kombu's
# default throttle would make that 10x longer).
# https://docs.celeryq.dev/projects/kombu/en/stable/reference/kombu.transport.redis.html
# A broker that accepts connections and never answers (Redis frozen, a half-open
# connection after a failover) would hold a command forever (kombu's default): an upload's
# hand-off, readiness, a worker. CELERY_BROKER_SOCKET_TIMEOUT bounds each command; it must
# outlast kombu's 1-s BRPOP, which workers wait on.
CELERY_BROKER_SOCKET_TIMEOUT = env_float("CELERY_BROKER_SOCKET_TIMEOUT", 2.0, minimum=1.5, maximum=300)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("CELERY_BROKER_VISIBILITY_TIMEOUT", 900, minimum=1),
    "unacked_restore_interval": env_int("CELERY_BROKER_RESTORE_INTERVAL", 10, minimum=1),
    "unacked_restore_throttle": 1,
    "socket_timeout": CELERY_BROKER_SOCKET_TIMEOUT,
    "socket_connect_timeout": 2.0,
    # A connection that is not open yet (a web process's first send after Redis went
    # away) is tried twice, not for CELERY_BROKER_CONNECTION_TIMEOUT with 2-s pauses: a
    # refused connection cost each upload 2 s. Workers and beat reconnect on their own
    # schedule (broker_connection_max_retries), which this does not change.
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Sending a task from a request: a broker that is down costs it about a second, then the
# images wait in the outbox (embeddings.receivers).
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
CELERY_BROKER_CONNECTION_TIMEOUT = 2.0
# With a broker, workers are processes of their own; the embedded store admits one process,
# so the web and the workers would lock each other out. Refuse that set-up at start.
if not CELERY_TASK_ALWAYS_EAGER and not QDRANT_URL and not VITRINE_INDEX_SERVER:
    raise ImproperlyConfigured(
        "CELERY_BROKER_URL is set, so Celery workers run in processes of their own, but the vector store is the "
        f"embedded one ({VITRINE_INDEX_PATH}), which one process can open at a time: the web and the workers "
        "would lock each other out. Set QDRANT_URL to a Qdrant server (docker compose runs one); or, on one "
        "machine, run `python manage.py serve_index` and set VITRINE_INDEX_SERVER=127.0.0.1:6390 for every "
        "process; or unset CELERY_BROKER_URL to index in the web process."
    )
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- API --------------------------------------------------------------------------------

# API keys are made in the admin (or `manage.py create_api_key`). Each key's requests are
# limited to this many per second/minute/hour/day ("600/minute"); a key can have its own.
VITRINE_API_RATE = env_rate("VITRINE_API_RATE", "600/minute")
# Photo searches from the search page, per client address (each decodes or fetches a photo).
VITRINE_PHOTO_SEARCH_RATE = env_rate("VITRINE_PHOTO_SEARCH_RATE", "30/minute")
# "Imagine it" searches from the search page, per client address (each may cost an image
# API call of several seconds; the same words again are answered from the cache).
VITRINE_IMAGINE_RATE = env_rate("VITRINE_IMAGINE_RATE", "6/minute")
# Products per bulk upsert request.
VITRINE_API_BULK_MAX = env_int("VITRINE_API_BULK_MAX", 500, minimum=1, maximum=10_000)
# Bodies Django may hold in memory: a search photo in base64, or a full bulk request (the
# request size middleware refuses larger bodies per path before they are read).
# A bulk upsert's body may hold this much per product (a long description and attributes fit).
API_BULK_BYTES_PER_PRODUCT = 32 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = (
    max(VITRINE_MAX_IMAGE_BYTES * 4 // 3, VITRINE_API_BULK_MAX * API_BULK_BYTES_PER_PRODUCT) + 1024 * 1024
)
# Storefront origins whose browsers may call the API ("https://shop.example,https://m.shop.example").
CORS_ALLOWED_ORIGINS = env_list("VITRINE_CORS_ORIGINS", [])
CORS_URLS_REGEX = r"^/api/v1/.*$"
CORS_ALLOW_HEADERS = ["accept", "authorization", "content-type", "x-api-key"]
CORS_EXPOSE_HEADERS = ["retry-after"]
CORS_ALLOW_CREDENTIALS = False

# Throttling counts requests in the cache: shared between processes only with a shared
# cache (CACHE_URL=redis://…; docker compose sets it), per process otherwise.
CACHE_URL = env_str("CACHE_URL")


def _no_retry():
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return Retry(NoBackoff(), 0)


if CACHE_URL and not CACHE_URL.startswith(("redis://", "rediss://")):
    raise ImproperlyConfigured(f"CACHE_URL={CACHE_URL!r} must be a redis:// or rediss:// URL.")
CACHES = {
    "default": (
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": CACHE_URL,
            # Every use of the cache has a fallback (searchsite.caching): a cache that is down
            # or stuck costs a request half a second at most, never a 500.
            # (redis-py would otherwise retry each call three times with backoff: seconds.)
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5, "retry": _no_retry()},
        }
        if CACHE_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "api.parsers.StrictJSONParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_AUTHENTICATION_CLASSES": ["api.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["api.auth.HasScope"],
    "DEFAULT_THROTTLE_CLASSES": ["api.auth.ApiKeyThrottle"],
    "EXCEPTION_HANDLER": "api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Vitrine API",
    "DESCRIPTION": (
        "Keep Vitrine in sync with your catalog and search it by words, photos and products.\n\n"
        "Send an API key as `Authorization: Bearer <key>` (or `X-Api-Key: <key>`). Keys are made "
        "in the admin (*API keys*); scope `search` reads, scope `catalog:write` writes.\n\n"
        'Every error has the same shape: `{"error": {"code", "message", "fields"?}}`.'
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"persistAuthorization": True, "displayRequestDuration": True},
    # The health checks' "ok" / "unavailable" is one choice set, named once.
    "ENUM_NAME_OVERRIDES": {"DependencyStateEnum": "api.serializers.DEPENDENCY_STATES"},
    "TAGS": [
        {"name": "search", "description": "Find products by words, photos, or products people like"},
        {"name": "products", "description": "Keep the catalog in sync, by the shop's own product ids"},
        {"name": "images", "description": "Add photos by file or URL; follow their indexing"},
        {"name": "health", "description": "For load balancers and monitors"},
    ],
}

# --- Logging ----------------------------------------------------------------------------

LOG_LEVEL = env_choice("LOG_LEVEL", "info", {"debug", "info", "warning", "error"}).upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "catalog": {"level": LOG_LEVEL},
        "embeddings": {"level": LOG_LEVEL},
        "storefront": {"level": LOG_LEVEL},
        "api": {"level": LOG_LEVEL},
        "searchsite": {"level": LOG_LEVEL},
        "celery": {"level": LOG_LEVEL},
    },
}
