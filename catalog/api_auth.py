"""Who may write through the API: a bearer token, or a staff session."""

from __future__ import annotations

import secrets

from django.conf import settings
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed, NotAuthenticated, PermissionDenied
from rest_framework.permissions import BasePermission
from rest_framework.request import Request


class ApiClient:
    """Who a valid API token stands for (per-client keys come with the API issue)."""

    is_authenticated = True
    is_active = True
    is_staff = False


class ApiTokenAuthentication(BaseAuthentication):
    """``Authorization: Bearer $VITRINE_API_TOKEN``."""

    def authenticate(self, request: Request):
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return None
        token = settings.VITRINE_API_TOKEN
        given = header.removeprefix("Bearer ").strip()
        if not token or not secrets.compare_digest(given.encode(), token.encode()):
            raise AuthenticationFailed("The API token is not valid.")
        return ApiClient(), "api-token"

    def authenticate_header(self, request: Request) -> str:
        return "Bearer"


LOOPBACK_ADDRESSES = {"127.0.0.1", "::1"}


class CanWrite(BasePermission):
    """Writes need the API token, or a session of a user who may change products; with no
    token configured, writes are open only to this machine while DEBUG is on (the demo)."""

    def has_permission(self, request: Request, view) -> bool:
        user = request.user
        if request.auth == "api-token":
            return True
        if user is not None and user.is_active and user.has_perm("catalog.change_product"):
            return True
        if not settings.VITRINE_API_TOKEN:
            # The embedded demo: open to this machine only, never to the network.
            if settings.DEBUG and request.META.get("REMOTE_ADDR") in LOOPBACK_ADDRESSES:
                return True
            raise PermissionDenied("Writes are disabled: set VITRINE_API_TOKEN and send it as a Bearer token.")
        raise NotAuthenticated("Send the API token as 'Authorization: Bearer <token>'.")
