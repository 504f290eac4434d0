"""The webhook's body and signature (what a receiver verifies).

Body: compact JSON with sorted keys, ``{"created_at", "data", "id", "return_id",
"type"}``, built from the stored event, so every attempt sends the same bytes.

Signature scheme: ``X-ReturnLens-Timestamp: <t>`` (Unix seconds of this attempt) and
``X-ReturnLens-Signature: sha256=<hex>`` where hex is HMAC-SHA256 keyed with the shared
secret over ``<t>`` + ``.`` + the raw body bytes. Signing the timestamp with the body
lets a receiver refuse a captured request replayed later (compare ``t`` with its own
clock, e.g. within 5 minutes) without trusting an unsigned header; a retry carries a
new timestamp and signature over the same body. A receiver must verify over the raw
bytes before parsing, compare in constant time (``verify`` does both), and dedupe on
the event id (``X-ReturnLens-Event-Id``), which a retry repeats.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime
from typing import Any

SIGNATURE_HEADER = "X-ReturnLens-Signature"
TIMESTAMP_HEADER = "X-ReturnLens-Timestamp"
EVENT_ID_HEADER = "X-ReturnLens-Event-Id"
EVENT_TYPE_HEADER = "X-ReturnLens-Event-Type"


def webhook_body(
    event_id: str,
    event_type: str,
    created_at: datetime,
    return_id: str | None,
    payload: dict[str, Any],
) -> bytes:
    doc = {
        "id": event_id,
        "type": event_type,
        "created_at": created_at.isoformat(),
        "return_id": return_id,
        "data": payload,
    }
    return json.dumps(doc, separators=(",", ":"), sort_keys=True, default=str).encode()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of "<timestamp>." + body>``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify(secret: str, timestamp: str, body: bytes, header: str) -> bool:
    """What a receiver does: recompute over the raw body, compare in constant time."""
    if not timestamp.isdigit():
        return False
    return hmac.compare_digest(signature(secret, int(timestamp), body), header)


def headers(
    event_id: str, event_type: str, secret: str, timestamp: int, body: bytes
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        EVENT_ID_HEADER: event_id,
        EVENT_TYPE_HEADER: event_type,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(secret, timestamp, body),
    }
