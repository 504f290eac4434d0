"""The photo store in an S3-compatible bucket (AWS S3, SeaweedFS, MinIO, Ceph RGW, ...).

The same contract as the local :class:`~serving.storage.photostore.PhotoStore`: a photo
is the metadata-free JPEG (``clean_jpegs``: the upload's own JPEG data without its
metadata where that is exact, else a re-encode of the pixels), stored under the key
``<prefix>ab/cdef....jpg`` named by the sha256 of those bytes, and written *before* the
row that points at it commits (the callers' order), so a committed row never points at a
missing object and a failed write leaves at most an orphan for ``returnlens storage gc``.

**No overwrite.** Every write is a conditional ``PutObject`` (``If-None-Match: *``): when
the key exists the store answers 412 and the stored object is kept. AWS S3 and
SeaweedFS 4.x honour it (``tests/test_s3_store.py`` checks it); a store that answers
``NotImplemented`` to the condition makes this client fall back, for its lifetime, to a
``HeadObject`` then a plain ``PutObject`` when the key is missing (a race between two
writers then writes the same bytes twice, which the content-addressed key makes
harmless). A reused photo is made young again with a copy onto itself that only replaces
its metadata (the bytes are not sent again), so the garbage collector's grace period
(``serving.storage.gc``) covers an upload whose row has not committed yet.

**Failures.** Every call is bounded (``s3_connect_timeout_s``, ``s3_read_timeout_s``,
``s3_max_attempts``); a store that cannot be reached, is too slow, refuses the
credentials or has no such bucket raises :class:`StoreUnavailable` (503
``photo_store_unavailable`` with ``Retry-After``), so an upload is refused whole and no
decision is stored without its photos. A missing key is ``NotFound``. :meth:`ready`
(``/readyz``) is a ``HeadBucket``, cached for ``READY_TTL_S`` seconds.

boto3 is imported when the store is built: a local-only install does not need it
(``pip install 'returnlens[s3]'``).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from serving.domain_errors import NotFound, StoreUnavailable
from serving.storage.photostore import (
    _DIGEST,
    MEDIA_TYPE,
    CleanPuts,
    StoredPhoto,
    photo_name,
)
from vision.errors import ConfigError

if TYPE_CHECKING:
    from serving.settings import Settings

READY_TTL_S = 2.0  # /readyz probes at most one HeadBucket per this many seconds
# Answers that mean "this key is not there" (HeadObject has no body: only the status).
_MISSING_KEY = frozenset({"NoSuchKey", "404", "NotFound"})
# A conditional write that lost: the key exists (412), or another conditional write to
# the same key is in flight (409 on AWS): either way the same bytes are, or will be, there.
_EXISTS = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


class S3PhotoStore(CleanPuts):
    """Photos in ``bucket`` under ``prefix``, keyed by the sha256 of the stored bytes."""

    media_type = MEDIA_TYPE

    def __init__(
        self,
        bucket: str,
        *,
        local_root: Path,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        connect_timeout_s: float = 2.0,
        read_timeout_s: float = 10.0,
        max_attempts: int = 2,
        max_connections: int = 32,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        try:
            import boto3
            from botocore.config import Config
        except ImportError as exc:  # a serving install without the s3 extra
            raise ConfigError(
                "the S3 photo store needs boto3: pip install 'returnlens[s3]'",
                code="invalid_setting",
            ) from exc
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.endpoint_url = endpoint_url
        self.local_root = Path(local_root)
        self.local_root.mkdir(parents=True, exist_ok=True)
        config = Config(
            connect_timeout=connect_timeout_s,
            read_timeout=read_timeout_s,
            retries={"max_attempts": max_attempts, "mode": "standard"},
            max_pool_connections=max_connections,
            # A custom endpoint (SeaweedFS, MinIO) has no per-bucket host names.
            s3={"addressing_style": "path" if endpoint_url else "auto"},
        )
        # A client (unlike a session) is thread-safe: one for every request thread.
        self.client: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=config,
        )
        from botocore.exceptions import BotoCoreError, ClientError

        self._client_error: type[Exception] = ClientError
        self._transport_error: type[Exception] = BotoCoreError
        self._conditional = True  # If-None-Match honoured until the store says otherwise
        self._clock = clock
        self._ready_lock = threading.Lock()
        self._ready: tuple[float, bool] | None = None  # (when checked, answer)

    @classmethod
    def from_settings(cls, settings: Settings) -> S3PhotoStore:
        assert settings.s3_bucket is not None  # Settings refuses s3 without a bucket
        secret = settings.s3_secret_access_key
        return cls(
            settings.s3_bucket,
            local_root=settings.photo_dir,
            prefix=settings.s3_prefix,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=secret.get_secret_value() if secret is not None else None,
            connect_timeout_s=settings.s3_connect_timeout_s,
            read_timeout_s=settings.s3_read_timeout_s,
            max_attempts=settings.s3_max_attempts,
            max_connections=max(
                10,
                (settings.light_upload_slots() + settings.heavy_upload_concurrency)
                * settings.max_photos,
            ),
        )

    def describe(self) -> str:
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return f"s3://{self.bucket}/{self.prefix}{where}"

    def key(self, digest: str) -> str:
        return self.prefix + photo_name(digest)

    def location(self, digest: str) -> str:
        return f"s3://{self.bucket}/{self.key(digest)}"

    # ------------------------------------------------------------------ errors
    def _unavailable(self, exc: Exception, doing: str) -> StoreUnavailable:
        code = _code(exc) or type(exc).__name__
        return StoreUnavailable(
            f"The photo store does not answer ({doing}: {code}); try again shortly.",
            details={"store": "s3", "reason": code},
        )

    def _call(self, doing: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
        """One S3 call; transport failures and refusals become StoreUnavailable, the
        ClientErrors the caller handles itself are re-raised as they are."""
        try:
            return fn(Bucket=self.bucket, **kwargs)
        except self._client_error:
            raise
        except self._transport_error as exc:  # refused, timed out, reset, no credentials
            raise self._unavailable(exc, doing) from exc

    # ------------------------------------------------------------------ writes
    def put_bytes(self, data: bytes) -> str:
        """Store already-clean JPEG bytes (callers must have stripped metadata)."""
        digest = hashlib.sha256(data).hexdigest()
        key = self.key(digest)
        if not self._conditional and self._head(key, "checking a photo") is not None:
            self._touch(key)
            return digest
        extra = {"IfNoneMatch": "*"} if self._conditional else {}
        try:
            self._call(
                "storing a photo",
                self.client.put_object,
                Key=key,
                Body=data,
                ContentType=MEDIA_TYPE,
                **extra,
            )
        except self._client_error as exc:
            code = _code(exc)
            if self._conditional and code in _EXISTS:
                self._touch(key)
            elif self._conditional and code == "NotImplemented":
                self._conditional = False  # this store cannot: HEAD, then PUT
                return self.put_bytes(data)
            else:
                raise self._unavailable(exc, "storing a photo") from exc
        return digest

    def _touch(self, key: str) -> None:
        """Make a reused photo young again (its Last-Modified), without sending its bytes:
        a copy onto itself that only replaces the metadata."""
        try:
            self._call(
                "refreshing a photo",
                self.client.copy_object,
                Key=key,
                CopySource={"Bucket": self.bucket, "Key": key},
                MetadataDirective="REPLACE",
                ContentType=MEDIA_TYPE,
                Metadata={"reused-at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")},
            )
        except self._client_error as exc:
            raise self._unavailable(exc, "refreshing a photo") from exc

    # ------------------------------------------------------------------ reads
    def _head(self, key: str, doing: str) -> dict[str, Any] | None:
        try:
            return dict(self._call(doing, self.client.head_object, Key=key))
        except self._client_error as exc:
            if _code(exc) in _MISSING_KEY:
                return None
            raise self._unavailable(exc, doing) from exc

    def get(self, digest: str) -> bytes:
        key = self.key(digest)
        try:
            body = self._call("reading a photo", self.client.get_object, Key=key)["Body"]
            try:
                return bytes(body.read())
            finally:
                body.close()
        except self._client_error as exc:
            if _code(exc) in _MISSING_KEY:
                raise NotFound(
                    f"photo {digest[:12]}... is not in the photo store", code="not_found"
                ) from exc
            raise self._unavailable(exc, "reading a photo") from exc
        except self._transport_error as exc:  # the body's read timed out or was cut
            raise self._unavailable(exc, "reading a photo") from exc

    def exists(self, digest: str) -> bool:
        return self._head(self.key(digest), "checking a photo") is not None

    # ------------------------------------------------------------------ housekeeping
    def list_photos(self) -> list[StoredPhoto]:
        """Every object under the prefix named the way the store names its photos."""
        out = []
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix
        )
        try:
            for page in pages:
                for obj in page.get("Contents", []):
                    name = obj["Key"][len(self.prefix) :]
                    digest = name[:2] + name[3:].split(".", 1)[0]
                    if _DIGEST.match(digest) and self.key(digest) == obj["Key"]:
                        mtime = obj["LastModified"].timestamp()
                        out.append(
                            StoredPhoto(digest, mtime, int(obj["Size"]), self.location(digest))
                        )
        except (self._client_error, self._transport_error) as exc:
            raise self._unavailable(exc, "listing the photos") from exc
        return out

    def delete(self, digest: str, *, older_than: float) -> bool:
        """Remove the photo if it was last written or reused before ``older_than``
        (its Last-Modified, read right before the delete; a put that reuses it between
        the two calls is the one race left, milliseconds wide)."""
        key = self.key(digest)
        head = self._head(key, "checking a photo")
        if head is None or head["LastModified"].timestamp() >= older_than:
            return False
        try:
            self._call("removing a photo", self.client.delete_object, Key=key)
        except self._client_error as exc:
            raise self._unavailable(exc, "removing a photo") from exc
        return True

    def ready(self) -> bool:
        """The bucket answers a HeadBucket with these credentials (cached briefly)."""
        now = self._clock()
        with self._ready_lock:
            if self._ready is not None and now - self._ready[0] < READY_TTL_S:
                return self._ready[1]
        try:
            self._call("checking the bucket", self.client.head_bucket)
            ok = True
        except (self._client_error, StoreUnavailable):
            ok = False
        with self._ready_lock:
            self._ready = (self._clock(), ok)
        return ok
