from __future__ import annotations

from django.db import models


class ApiKey(models.Model):
    """A key for the integration API. Only its SHA-256 is stored; the key itself is shown
    once, when it is made. ``prefix`` (its first characters) names it in lists and logs."""

    SCOPE_SEARCH = "search"
    SCOPE_CATALOG_WRITE = "catalog:write"
    SCOPES = (
        (SCOPE_SEARCH, "search: search and read products and images"),
        (SCOPE_CATALOG_WRITE, "catalog:write: create, change and delete products and images"),
    )

    name = models.CharField(max_length=200, help_text="Who or what uses it, e.g. “shop backend (production)”")
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False)
    scopes = models.JSONField(default=list)
    rate = models.CharField(
        max_length=32,
        blank=True,
        help_text="Requests allowed, e.g. 1200/minute; empty: VITRINE_API_RATE",
    )
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: never expires")
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_by = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def has_scope(self, scope: str) -> bool:
        return scope in (self.scopes or [])
