"""Instants given on the command line or in configuration: ISO 8601 with a time zone."""

from __future__ import annotations

from datetime import datetime

from scrums_velocity.errors import ConfigError


def parse_instant(value: str, flag: str) -> datetime:
    """``2026-11-23T09:00:00Z`` (or any ISO 8601 time with an offset) to an aware datetime;
    a ``ConfigError`` naming ``flag`` otherwise."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"{flag} must be an ISO timestamp like 2026-11-23T09:00:00Z; got {value!r}"
        ) from None
    if parsed.tzinfo is None:
        raise ConfigError(f"{flag} needs a time zone (append Z for UTC); got {value!r}")
    return parsed
