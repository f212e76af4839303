"""Ids and timestamps in Docker's shapes, for every object the controller makes."""

from __future__ import annotations

import secrets
from datetime import datetime, timezone


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_id() -> str:
    """64 hex digits, as Docker's ids."""
    return secrets.token_hex(32)
