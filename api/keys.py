"""API keys: made, checked and revoked here (the admin and ``create_api_key`` call these).

A key looks like ``vtr_k3j9x0qa_<43 random characters>``. Its first 12 characters are the
*prefix*: stored in clear, shown in the admin and in logs, and used to find the key's row.
Only the SHA-256 of the whole key is stored. A slow hash would add nothing: the key has
256 random bits, so it cannot be guessed from its hash.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from api.models import ApiKey
from searchsite.env import RATE_PATTERN
from searchsite.errors import InputRejected

KEY_PATTERN = re.compile(r"^vtr_[a-z0-9]{8}_[A-Za-z0-9_-]{43}$")
PREFIX_LENGTH = 12
# "Last used" is written at most this often, so busy keys do not write on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)
SCOPE_NAMES = [scope for scope, _ in ApiKey.SCOPES]


@dataclass(frozen=True)
class NewApiKey:
    api_key: ApiKey
    key: str  # shown once: it is not stored


def api_key_create(
    *,
    name: str,
    scopes: list[str],
    expires_at: datetime | None = None,
    rate: str = "",
    created_by=None,
) -> NewApiKey:
    unknown = sorted(set(scopes) - set(SCOPE_NAMES))
    if unknown:
        raise ValidationError({"scopes": f"Unknown scope(s): {', '.join(unknown)}; use {', '.join(SCOPE_NAMES)}."})
    if not scopes:
        raise ValidationError({"scopes": "Give the key at least one scope."})
    rate = rate.strip().lower().replace(" ", "")
    if rate and not RATE_PATTERN.match(rate):
        raise ValidationError({"rate": "Write it like 600/minute (per second, minute, hour or day)."})
    for _ in range(5):  # a prefix collision is a 1 in 36^8 event; retry rather than fail
        prefix = "vtr_" + "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))
        key = f"{prefix}_{secrets.token_urlsafe(32)}"
        api_key = ApiKey(
            name=name,
            prefix=prefix,
            secret_hash=_hash(key),
            scopes=[s for s in SCOPE_NAMES if s in scopes],
            rate=rate,
            expires_at=expires_at,
            created_by=created_by,
        )
        api_key.full_clean(exclude=["prefix", "secret_hash"])
        try:
            with transaction.atomic():
                api_key.save()
        except IntegrityError:
            continue
        return NewApiKey(api_key=api_key, key=key)
    raise RuntimeError("Could not find a free API key prefix")


def api_key_revoke(*, api_key: ApiKey) -> None:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])


class ApiKeyRefused(InputRejected):
    """The key is unknown, revoked or expired (.code says which)."""


def api_key_check(key: str) -> ApiKey:
    """The live key ``key`` stands for, or ApiKeyRefused (never says which part was wrong
    beyond revoked/expired, and never echoes the key)."""
    if not KEY_PATTERN.match(key):
        raise ApiKeyRefused("invalid_key", "The API key is not valid.")
    api_key = ApiKey.objects.filter(prefix=key[:PREFIX_LENGTH]).first()
    # Compare hashes in constant time even when no row was found.
    expected = api_key.secret_hash if api_key is not None else "0" * 64
    if not secrets.compare_digest(_hash(key), expected) or api_key is None:
        raise ApiKeyRefused("invalid_key", "The API key is not valid.")
    now = timezone.now()
    if api_key.revoked_at is not None:
        raise ApiKeyRefused("revoked_key", f"The API key {api_key.prefix}… was revoked.")
    if api_key.expires_at is not None and api_key.expires_at <= now:
        raise ApiKeyRefused("expired_key", f"The API key {api_key.prefix}… expired.")
    if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()
