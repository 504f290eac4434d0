"""Service-level refusals. The HTTP layer maps each CLASS to one status code
(``serving/errors.py``): NotFound 404, Conflict 409, Invalid 422, Forbidden 403,
Unauthorized 401, StoreUnavailable 503 with ``Retry-After``. Decoding failures stay
``vision.errors.DecodeError``.
"""

from __future__ import annotations

from vision.errors import ReturnLensError


class NotFound(ReturnLensError):
    """codes: not_found, unknown_order, unknown_sku, unknown_return, unknown_photo,
    unknown_inspection."""

    code = "not_found"


class Conflict(ReturnLensError):
    """codes: duplicate_upload, already_decided, idempotency_conflict, concurrent_upload,
    name_taken."""

    code = "conflict"


class Invalid(ReturnLensError):
    """codes: too_many_photos, no_photos, invalid_reason, invalid_field, invalid_label,
    nothing_to_review."""

    code = "invalid"


class Forbidden(ReturnLensError):
    code = "forbidden"


class Unauthorized(ReturnLensError):
    code = "unauthorized"


class StoreUnavailable(ReturnLensError):
    """The photo store does not answer, refuses our credentials, has no bucket, or is too
    slow: the request is refused whole (nothing is stored without its photos) and may be
    retried after ``retry_after_s`` seconds. code: photo_store_unavailable."""

    code = "photo_store_unavailable"
    retry_after_s = 5
