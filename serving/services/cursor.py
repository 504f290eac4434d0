"""The staff search's page cursor: opaque to clients, checked strictly on the way in.

A cursor is the base64url (unpadded) JSON ``[sort, key, id]`` of the last row a page
showed: the sort it was made for, that row's sort value (an ISO time or a price) and its
id, the tiebreaker that makes keyset pages stable under equal sort values. Carrying the
sort means a cursor replayed with another sort is refused instead of skipping rows.
Nothing in it is secret or signed: a forged cursor only moves where a page starts.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

MAX_CURSOR = 400  # characters; a real one is about 100


@dataclass(frozen=True)
class Cursor:
    sort: str
    key: datetime | float | None
    id: str


def encode(sort: str, key: datetime | float | None, row_id: str) -> str:
    value = key.isoformat() if isinstance(key, datetime) else key
    raw = json.dumps([sort, value, row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(text: str, sort: str) -> Cursor:
    """The cursor for ``sort``; ValueError with a sentence when it is not one."""
    if len(text) > MAX_CURSOR:
        raise ValueError("the cursor is longer than any this service makes")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        made_for, value, row_id = json.loads(raw)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise ValueError("the cursor is not one this service made") from None
    if made_for != sort:
        raise ValueError(f"the cursor was made for sort={made_for!r}, not sort={sort!r}")
    if not isinstance(row_id, str) or not row_id:
        raise ValueError("the cursor names no row")
    return Cursor(sort, _key(sort, value), row_id)


def _key(sort: str, value: Any) -> datetime | float | None:
    if sort.lstrip("-") == "created_at":
        if not isinstance(value, str):
            raise ValueError("the cursor's time is not a string")
        try:
            at = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("the cursor's time is not an ISO time") from None
        return at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
        return None if value is None else float(value)
    raise ValueError("the cursor's price is not a number")
