"""Presented secrets: where a request carries one, and how a secret is stored.

One parser for the two header forms (``Authorization: Bearer <secret>`` and
``X-API-Key: <secret>``), used by the rate limiter (per-credential buckets) and the API's
auth dependency, so the two always agree on which credential a request carries. One
hash for every secret the service keeps (API keys, shopper tokens, the bootstrap admin
key): plain sha256, since all of them are 256-bit random strings and a slow or peppered
hash adds nothing at that entropy.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping


def credential_of(headers: Mapping[str, str]) -> str | None:
    """The bearer token or API key a request carries, if any (not validated here).
    A bearer credential wins over ``X-API-Key``; blank values count as none."""
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    key = headers.get("x-api-key", "").strip()
    return key or None


def secret_hash(secret: str) -> str:
    """The hex sha256 stored (or compared) in place of a secret."""
    return hashlib.sha256(secret.encode("utf-8", "replace")).hexdigest()


def same_secret(secret: str, stored_hash: str) -> bool:
    """Whether ``secret`` hashes to ``stored_hash``, compared in constant time."""
    return hmac.compare_digest(secret_hash(secret), stored_hash)
