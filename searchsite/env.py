"""Typed readers for environment variables.

Each helper names the variable in the error so a bad deployment fails at start-up with a
message that says what to fix, not somewhere deep in a request. (The pattern follows
healthchecks' ``envbool``/``envint``.)
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_is_set(name: str) -> bool:
    """Whether the variable is given a value (even 0): an explicit answer, not a default."""
    return bool(os.environ.get(name, "").strip())


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean; use 1/0, true/false, yes/no or on/off.")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip().replace("_", ""))
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number.") from None
    _check_range(name, value, minimum, maximum)
    return value


def env_float(name: str, default: float, *, minimum: float | None = None, maximum: float | None = None) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number.") from None
    _check_range(name, value, minimum, maximum)
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_weights(name: str, default: dict[str, float], *, known: set[str]) -> dict[str, float]:
    """Weights per name, like "title=3,brand=3,description=0.5" (names left out keep their
    default; 0 turns one off)."""
    raw = os.environ.get(name)
    weights = dict(default)
    if raw is None or not raw.strip():
        return weights
    for item in raw.split(","):
        key, _, value = item.partition("=")
        key = key.strip()
        if key not in known:
            raise ImproperlyConfigured(f"{name}: {key!r} is not one of: {', '.join(sorted(known))}.")
        try:
            weights[key] = float(value)
        except ValueError:
            raise ImproperlyConfigured(f"{name}: {item.strip()!r} is not name=number.") from None
        _check_range(name, weights[key], 0, 100)
    return weights


def env_choice(name: str, default: str, choices: set[str]) -> str:
    value = env_str(name, default).lower()
    if value not in choices:
        allowed = ", ".join(sorted(choices))
        raise ImproperlyConfigured(f"{name}={value!r} is not one of: {allowed}.")
    return value


def env_path(name: str, default: Path) -> Path:
    raw = env_str(name)
    return Path(raw).expanduser().resolve() if raw else default


def _check_range(name: str, value: float, minimum: float | None, maximum: float | None) -> None:
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is below the minimum of {minimum}.")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name}={value} is above the maximum of {maximum}.")


RATE_PATTERN = re.compile(r"^0*[1-9]\d*/(s|sec|second|m|min|minute|h|hour|d|day)$")


def env_rate(name: str, default: str) -> str:
    """A request rate like "600/minute" (DRF's throttle format)."""
    value = env_str(name, default).lower().replace(" ", "")
    if not RATE_PATTERN.match(value):
        raise ImproperlyConfigured(f"{name}={value!r} is not a rate like 600/minute (per second, minute, hour or day).")
    return value


def env_http_url(name: str, default: str = "") -> str:
    """An http(s) URL with a host, or empty (the feature it configures is off)."""
    from urllib.parse import urlsplit

    value = env_str(name, default)
    if not value:
        return ""
    try:
        parts = urlsplit(value)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        valid = False
    if not valid:
        raise ImproperlyConfigured(f"{name}={value!r} is not an http:// or https:// URL with a host.")
    return value


def env_pattern(name: str, default: str, pattern: str, what: str) -> str:
    value = env_str(name, default)
    if not re.fullmatch(pattern, value):
        raise ImproperlyConfigured(f"{name}={value!r} is not {what}.")
    return value
