"""Reading photo uploads from a multipart body, with hard limits at every step.

The route parses the form itself (after its credential check has passed), so an
unauthenticated caller never gets a multipart body parsed. Limits, in order:

1. the body cap (``BodyLimitMiddleware``): at most ``max_photos`` photos' worth of bytes;
2. the parser's file count: parsing stops one file past ``max_photos``;
3. each file's size, checked from the spooled size before its bytes are read into
   memory, and again while reading (``read(limit + 1)``).

The bytes are then handed to the service, which sniffs the real type from magic bytes;
the declared part content type and file name are ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartParser
from starlette.requests import Request

from serving.domain_errors import Invalid
from serving.settings import Settings
from vision.errors import DecodeError

PHOTOS_FIELD = "photos"
MAX_TEXT_FIELD = 4096


@dataclass(frozen=True)
class PhotoForm:
    photos: list[bytes]
    fields: dict[str, str] = field(default_factory=dict)
    lists: dict[str, list[str]] = field(default_factory=dict)  # repeated text fields


def keep_photos_in_memory(max_upload_bytes: int) -> None:
    """Let Starlette keep each uploaded file in memory up to the per-photo cap.

    Its default spools any part over 1 MiB to a temporary file, and then every 64 KiB
    chunk is written, and later read back, through a threadpool hop: about half the wall
    time of parsing a 4 MB phone photo (`returnlens bench` profile). The bytes are read
    into memory right after parsing anyway, and the body cap bounds a request's total.
    Process-wide: the parser reads it as a class attribute.
    """
    MultiPartParser.spool_max_size = max(MultiPartParser.spool_max_size, max_upload_bytes)


def multipart_body(
    extra: dict[str, Any] | None = None,
    required: Sequence[str] = (PHOTOS_FIELD,),
    max_items: int = 6,
) -> dict[str, Any]:
    """OpenAPI ``requestBody`` for routes that parse their multipart form themselves."""
    properties: dict[str, Any] = {
        PHOTOS_FIELD: {
            "type": "array",
            "minItems": 1,
            "maxItems": max_items,
            "items": {"type": "string", "format": "binary"},
            "description": "1-6 photos (JPEG, PNG or WebP), one part each.",
        },
    }
    properties.update(extra or {})
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": list(required),
                        "properties": properties,
                    },
                }
            },
        }
    }


def _too_many(limit: int, got: int | None = None) -> Invalid:
    count = f" ({got} were sent)" if got is not None else ""
    return Invalid(
        f"send at most {limit} photos per item{count}",
        code="too_many_photos",
        details={"max_photos": limit, **({"sent": got} if got is not None else {})},
    )


async def read_photo_form(
    request: Request,
    settings: Settings,
    text_fields: Sequence[str] = (),
    list_fields: Sequence[str] = (),
) -> PhotoForm:
    """The photos (1..max_photos, each <= max_upload_bytes), the named text fields and
    the named repeated text fields (at most one value per photo allowed each)."""
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise DecodeError(
            f"send the photos as multipart/form-data in the field '{PHOTOS_FIELD}', "
            f"not {content_type or 'a body without a content type'}",
            code="unsupported_media_type",
            details={"content_type": content_type},
        )
    limit, max_photos = settings.max_upload_bytes, settings.max_photos
    try:
        form = await request.form(
            max_files=max_photos + 1,
            max_fields=len(text_fields) + len(list_fields) * (max_photos + 1) + 4,
            max_part_size=MAX_TEXT_FIELD,
        )
    except HTTPException as exc:
        if exc.status_code == 400 and "too many files" in str(exc.detail).lower():
            raise _too_many(max_photos) from exc
        if exc.status_code != 400:
            raise
        raise Invalid(
            f"the multipart body cannot be parsed: {exc.detail}", code="invalid_multipart"
        ) from exc
    except Exception as exc:  # python-multipart's own parse errors on malformed bodies
        raise Invalid(
            f"the multipart body cannot be parsed: {exc}", code="invalid_multipart"
        ) from exc
    try:
        files: list[UploadFile] = []
        fields: dict[str, str] = {}
        lists: dict[str, list[str]] = {name: [] for name in list_fields}
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                if name != PHOTOS_FIELD:
                    raise Invalid(
                        f"unexpected file field '{name}'; photos go in the field '{PHOTOS_FIELD}'",
                        code="invalid_field",
                        details={"field": name},
                    )
                files.append(value)
            elif name in text_fields:
                fields[name] = value.strip()
            elif name in lists:
                lists[name].append(value.strip())
            elif name == PHOTOS_FIELD:
                raise Invalid(
                    f"the field '{PHOTOS_FIELD}' must hold files, not text",
                    code="invalid_field",
                    details={"field": PHOTOS_FIELD},
                )
        if not files:
            raise Invalid(
                f"attach 1 to {max_photos} photos in the multipart field '{PHOTOS_FIELD}'",
                code="no_photos",
                details={"field": PHOTOS_FIELD},
            )
        if len(files) > max_photos:
            raise _too_many(max_photos, len(files))
        photos = [await _read_capped(f, i, limit) for i, f in enumerate(files)]
        return PhotoForm(photos=photos, fields=fields, lists=lists)
    finally:
        await form.close()


async def _read_capped(upload: UploadFile, index: int, limit: int) -> bytes:
    """The file's bytes, refusing before reading when the spooled size is over ``limit``."""
    if upload.size is not None and upload.size > limit:
        raise _file_too_large(upload, index, limit, upload.size)
    await upload.seek(0)
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise _file_too_large(upload, index, limit, None)
    return data


def _file_too_large(upload: UploadFile, index: int, limit: int, size: int | None) -> DecodeError:
    name = upload.filename or f"photo {index + 1}"
    return DecodeError(
        f"{name} is larger than the {limit // 1024} KiB allowed per photo",
        code="too_large",
        details={
            "index": index,
            "limit_bytes": limit,
            **({"size_bytes": size} if size is not None else {}),
        },
    )
