"""Who is calling (API keys), what they may do (scopes) and how often (per-key throttling)."""

from __future__ import annotations

import logging

from django.conf import settings
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed, PermissionDenied
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from api.keys import ApiKeyRefused, api_key_check
from api.models import ApiKey
from searchsite.caching import cache_is_down, cache_outage_log

logger = logging.getLogger(__name__)

READ = (ApiKey.SCOPE_SEARCH, ApiKey.SCOPE_CATALOG_WRITE)
WRITE = (ApiKey.SCOPE_CATALOG_WRITE,)
SEARCH = (ApiKey.SCOPE_SEARCH,)


class ApiClient:
    """The caller behind a valid key (request.user); the key itself is request.auth."""

    is_authenticated = True
    is_active = True
    is_staff = False

    def __init__(self, api_key: ApiKey):
        self.api_key = api_key

    def __str__(self) -> str:
        return f"API key {self.api_key.prefix}"


class KeyRefused(AuthenticationFailed):
    def __init__(self, code: str, message: str):
        super().__init__(message, code)


class ApiKeyAuthentication(BaseAuthentication):
    """``Authorization: Bearer <key>`` or ``X-Api-Key: <key>``. Keys are never logged:
    only their prefix (the part the admin shows) appears in messages."""

    def authenticate(self, request: Request):
        header = request.headers.get("Authorization", "")
        if header:
            scheme, _, key = header.partition(" ")
            if scheme.lower() != "bearer" or not key.strip():
                raise KeyRefused("invalid_key", "Send the API key as 'Authorization: Bearer <key>'.")
            key = key.strip()
        else:
            key = request.headers.get("X-Api-Key", "").strip()
            if not key:
                return None
        try:
            api_key = api_key_check(key)
        except ApiKeyRefused as refused:
            logger.info("API request refused: %s (%s)", refused.code, key[:12] if key.startswith("vtr_") else "?")
            raise KeyRefused(refused.code, refused.message) from None
        return ApiClient(api_key), api_key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="vitrine"'


class HasScope(BasePermission):
    """A view lists the scopes that allow each method in ``scopes`` ({method: scopes});
    without one, reads take either scope and writes take ``catalog:write``."""

    def has_permission(self, request: Request, view) -> bool:
        api_key = request.auth
        if not isinstance(api_key, ApiKey):
            return False  # DRF answers 401 with WWW-Authenticate
        if not hasattr(view, request.method.lower()):
            return True  # DRF answers 405 Method Not Allowed
        allowed = getattr(view, "scopes", {}).get(request.method) or (READ if request.method in SAFE_METHODS else WRITE)
        if not any(api_key.has_scope(scope) for scope in allowed):
            raise PermissionDenied(
                f"The API key {api_key.prefix}… lacks the scope this needs: {' or '.join(allowed)}.",
                code="missing_scope",
            )
        return True


class ApiKeyThrottle(SimpleRateThrottle):
    """Requests per key, at the key's own rate or VITRINE_API_RATE (429 with Retry-After)."""

    scope = "api-key"

    def get_rate(self) -> str:
        return settings.VITRINE_API_RATE

    def allow_request(self, request: Request, view) -> bool:
        api_key = request.auth
        if not isinstance(api_key, ApiKey):
            return True  # refused anyway, by authentication
        self.rate = api_key.rate or settings.VITRINE_API_RATE
        self.num_requests, self.duration = self.parse_rate(self.rate)
        if cache_is_down():
            return True  # it failed moments ago: serve, unthrottled (below)
        try:
            return super().allow_request(request, view)
        except Exception as exc:  # noqa: BLE001 - the cache (Redis) is down: serve, unthrottled
            # Counting needs the shared cache; refusing every request while it is away would
            # turn a cache outage into an API outage. Said in the log, once a minute at most.
            cache_outage_log(exc)
            return True

    def get_cache_key(self, request: Request, view) -> str:
        return f"vitrine:throttle:{request.auth.pk}"
