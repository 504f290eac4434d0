"""Staff API keys: create, authenticate, list, revoke; over a database, not the model.

The API (``/v1/admin/api-keys``, through ``serving.services.admin``) and the CLI
(``returnlens keys``, which needs no model loaded) call these same functions.

A key is ``rlk_`` + 256 random bits, returned in plaintext once; only its
``secret_hash`` is stored (UNIQUE index, compared in constant time). Nothing here keeps a
key in memory between requests: every request is checked against the database, so a
revocation holds on the next request in every worker and on every replica.
``last_used_at`` is written at most once per ``LAST_USED_RESOLUTION`` per key, so a busy
key costs one small write a minute, not one per request.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from datetime import datetime, timedelta

from pydantic import ValidationError
from sqlalchemy import or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from serving.credentials import secret_hash
from serving.domain_errors import Conflict, Invalid, NotFound
from serving.services.inputs import ApiKeyRequest
from serving.services.records import ApiKeyInfoOut
from serving.storage import repo
from serving.storage.db import Database
from serving.storage.tables import ApiKey

log = logging.getLogger("returnlens.keys")

KEY_PREFIX = "rlk_"
PREFIX_CHARS = 10  # what listings show: "rlk_" and six characters
LAST_USED_RESOLUTION = timedelta(minutes=1)
MAX_KEY_CHARS = 200  # longer credentials are not keys; refused before hashing


def key_request(name: str, role: str) -> ApiKeyRequest:
    """``ApiKeyRequest`` from plain strings (the CLI), a bad field as one sentence."""
    try:
        return ApiKeyRequest.model_validate({"name": name, "role": role})
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in first["loc"]) or "key"
        raise Invalid(
            f"invalid {field}: {first['msg']}", code="invalid_field", details={"field": field}
        ) from exc


def create_key(db: Database, req: ApiKeyRequest, *, now: datetime, actor: str) -> str:
    """A new key for ``req.role``, returned in plaintext once; only its hash is stored."""
    name, role = req.name, req.role
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    prefix = key[:PREFIX_CHARS]
    with db.write() as s:
        if s.scalars(select(ApiKey).where(ApiKey.name == name)).first() is not None:
            raise Conflict(f"An API key named {name!r} already exists.", code="name_taken")
        s.add(
            ApiKey(
                id=repo.new_id("key"),
                name=name,
                role=role,
                key_hash=secret_hash(key),
                prefix=prefix,
                created_at=now,
            )
        )
        repo.append_audit(
            s,
            at=now,
            actor=actor,
            action="api_key_created",
            subject_type="api_key",
            subject_id=name,
            payload={"role": role, "prefix": prefix},
        )
    return key


def authenticate(db: Database, key: str, *, now: datetime) -> tuple[str, str] | None:
    """(name, role) of the live key ``key``, or None (unknown, revoked, not a key)."""
    if not key or not key.startswith(KEY_PREFIX) or len(key) > MAX_KEY_CHARS:
        return None
    digest = secret_hash(key)
    with db.read() as s:
        row = s.scalars(select(ApiKey).where(ApiKey.key_hash == digest)).first()
    if row is None or row.revoked_at is not None or not hmac.compare_digest(row.key_hash, digest):
        return None
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        _touch(db, row.id, now)
    return row.name, row.role


def _touch(db: Database, key_id: str, now: datetime) -> None:
    """Record the use; a busy or read-only database must not refuse the request."""
    stale = now - LAST_USED_RESOLUTION
    try:
        with db.write() as s:
            s.execute(
                update(ApiKey)
                .where(
                    ApiKey.id == key_id,
                    or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at <= stale),
                )
                .values(last_used_at=now)
            )
    except SQLAlchemyError as exc:
        log.warning("could not record the use of an API key: %s", type(exc).__name__)


def list_keys(db: Database) -> list[ApiKeyInfoOut]:
    """Every staff key, oldest first, revoked ones included (they stay for the audit)."""
    with db.read() as s:
        rows = s.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.name)).all()
        return [ApiKeyInfoOut.model_validate(r) for r in rows]


def revoke_key(db: Database, name: str, *, now: datetime, actor: str) -> None:
    """Revoke the key called ``name`` at once; revoking it again changes nothing."""
    with db.write() as s:
        row = s.scalars(select(ApiKey).where(ApiKey.name == name)).first()
        if row is None:
            raise NotFound(f"There is no API key named {name!r}.", code="not_found")
        if row.revoked_at is None:
            row.revoked_at = now
            repo.append_audit(
                s,
                at=now,
                actor=actor,
                action="api_key_revoked",
                subject_type="api_key",
                subject_id=name,
                payload={},
            )
