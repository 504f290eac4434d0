"""Admin: load the shop's catalog and orders (JSON arrays or CSV), reference photos, keys.

Both loaders validate every row with the service's own row models (``CatalogRow``,
``OrderRow``, via their API subclasses) before the service writes anything, so a bad row
17 refuses the whole upload with a 422 that names the row and the field; nothing is half
loaded. Catalog reference photos come base64-encoded in JSON, or one at a time as raw
image bytes to ``PUT /v1/admin/catalog/{sku}/reference``.
"""

from __future__ import annotations

import base64
import binascii
import csv
import functools
import io
import json
from typing import Any, TypeVar

import anyio
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from serving.api.deps import ADMIN, AdminDep, ServiceDep, SettingsDep, SlotsDep
from serving.api.schemas import V1, ApiKeyOut, CatalogItemIn, OrderIn, UpsertOut
from serving.domain_errors import Invalid
from serving.errors import error_responses, json_too_deep
from serving.services import admin
from serving.services.drift import drift_report
from serving.services.inputs import ApiKeyRequest
from serving.services.records import ApiKeyInfoOut
from vision.errors import DecodeError

router = APIRouter(prefix=f"{V1}/admin", tags=["admin"])
Row = TypeVar("Row", bound=BaseModel)


def _table_body(model: type[BaseModel], example_csv: str) -> dict[str, Any]:
    schema = {"type": "array", "items": {"$ref": f"#/components/schemas/{model.__name__}"}}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": schema},
                "text/csv": {"schema": {"type": "string"}, "example": example_csv},
            },
        }
    }


def _csv_rows(text: str, model: type[Row]) -> list[dict[str, str]]:
    """The CSV's rows as dicts (blank cells left out), header checked against the model.

    The csv module refuses some tables outright (a field over its 128 KiB limit, a bare
    CR inside an unquoted field); that is the sender's table, so a 422, never a 500."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        missing = [
            f
            for f, info in model.model_fields.items()
            if info.is_required() and f not in (reader.fieldnames or [])
        ]
        if missing:
            raise Invalid(
                f"the CSV header lacks the column(s) {', '.join(missing)}",
                code="invalid_csv",
                details={"missing_columns": missing},
            )
        return [{k: v for k, v in row.items() if k and v not in (None, "")} for row in reader]
    except csv.Error as exc:
        raise Invalid(
            f"the CSV could not be read at line {reader.line_num}: {exc}",
            code="invalid_csv",
            details={"line": reader.line_num},
        ) from exc


async def _rows(request: Request, model: type[Row]) -> list[Row]:
    """Parse a JSON array or a CSV table (header row first) into validated rows."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    if content_type in ("text/csv", "application/csv"):
        try:
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise Invalid("the CSV must be UTF-8 text", code="invalid_csv") from exc
        raw: list[Any] = _csv_rows(text, model)
        where = "row"
    elif content_type == "application/json" or content_type.endswith("+json"):
        try:
            raw = json.loads(body)
        except RecursionError as exc:  # 100,000 nested '[': 400, as on every JSON route
            raise json_too_deep() from exc
        except (ValueError, UnicodeDecodeError) as exc:
            raise Invalid("the request body is not valid JSON", code="invalid_json") from exc
        if not isinstance(raw, list):
            raise Invalid(
                "send a JSON array of rows", code="invalid_field", details={"field": "body"}
            )
        where = "item"
    else:
        raise DecodeError(
            f"send application/json or text/csv, not {content_type or 'nothing'}",
            code="unsupported_media_type",
            details={"content_type": content_type},
        )
    rows: list[Row] = []
    errors: list[dict[str, Any]] = []
    for i, item in enumerate(raw):
        try:
            rows.append(model.model_validate(item))
        except ValidationError as exc:
            number = i + 2 if where == "row" else i  # CSV rows count the header as row 1
            errors.extend(
                {**e, "loc": ("body", f"{where} {number}", *e["loc"])}
                for e in exc.errors(include_url=False)
            )
    if errors:
        raise RequestValidationError(errors)
    return rows


def _photo(value: str, sku: str, limit: int) -> bytes:
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Invalid(
            f"reference_photo_base64 of {sku} is not valid base64",
            code="invalid_field",
            details={"field": "reference_photo_base64", "sku": sku},
        ) from exc
    if len(data) > limit:
        raise DecodeError(
            f"the reference photo of {sku} is larger than {limit} bytes",
            code="too_large",
            details={"sku": sku, "limit_bytes": limit},
        )
    return data


@router.put(
    "/catalog",
    response_model=UpsertOut,
    responses=error_responses(401, 403, 413, 415, 422, 429),
    openapi_extra=_table_body(
        CatalogItemIn, "sku,category,name,price\nmug-02,mug,Stoneware mug,18.0\n"
    ),
    summary="Insert or update catalog items (JSON array or CSV)",
)
async def put_catalog(
    request: Request, who: AdminDep, svc: ServiceDep, settings: SettingsDep, slots: SlotsDep
) -> UpsertOut:
    rows = await _rows(request, CatalogItemIn)
    photos = {
        r.sku: _photo(r.reference_photo_base64, r.sku, settings.max_upload_bytes)
        for r in rows
        if r.reference_photo_base64 is not None
    }
    count = await anyio.to_thread.run_sync(
        functools.partial(admin.upsert_catalog, svc, rows, photos=photos, actor=who.name),
        limiter=slots.pick(svc.grader, photos.values()),
    )
    return UpsertOut(upserted=count)


@router.put(
    "/catalog/{sku}/reference",
    status_code=204,
    responses=error_responses(401, 403, 404, 413, 415, 422, 429),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                t: {"schema": {"type": "string", "format": "binary"}}
                for t in ("image/jpeg", "image/png", "image/webp")
            },
        }
    },
    dependencies=[ADMIN],
    summary="Set one SKU's reference photo (raw image bytes)",
)
async def put_reference(
    sku: str, request: Request, svc: ServiceDep, settings: SettingsDep, slots: SlotsDep
) -> None:
    data = await request.body()
    if len(data) > settings.max_upload_bytes:
        raise DecodeError(
            f"the photo is larger than {settings.max_upload_bytes} bytes", code="too_large"
        )
    if not data:
        raise Invalid("send the photo bytes as the request body", code="no_photos")
    limiter = slots.pick(svc.grader, [data])
    await anyio.to_thread.run_sync(admin.set_reference_photo, svc, sku, data, limiter=limiter)


@router.put(
    "/orders",
    response_model=UpsertOut,
    responses=error_responses(401, 403, 413, 415, 422, 429),
    openapi_extra=_table_body(
        OrderIn,
        "order_id,customer_id,customer_email,sku,price,delivered_at\n"
        "ORD-1,C-1,ada@example.com,mug-02,18.0,2025-05-01T10:00:00Z\n",
    ),
    summary="Insert or update delivered orders (JSON array or CSV)",
)
async def put_orders(request: Request, who: AdminDep, svc: ServiceDep) -> UpsertOut:
    rows = await _rows(request, OrderIn)
    count = await anyio.to_thread.run_sync(
        functools.partial(admin.upsert_orders, svc, rows, actor=who.name)
    )
    return UpsertOut(upserted=count)


@router.post(
    "/api-keys",
    status_code=201,
    response_model=ApiKeyOut,
    responses=error_responses(401, 403, 409, 422, 429),
    summary="Create a dock, reviewer or admin API key (shown once)",
)
def create_api_key(body: ApiKeyRequest, who: AdminDep, svc: ServiceDep) -> ApiKeyOut:
    key = admin.create_api_key(svc, body, actor=who.name)
    return ApiKeyOut(name=body.name, role=body.role, key=key)


@router.get(
    "/api-keys",
    response_model=list[ApiKeyInfoOut],
    responses=error_responses(401, 403, 429),
    dependencies=[ADMIN],
    summary="List the staff API keys (names, roles, prefixes; never the keys)",
)
def list_api_keys(svc: ServiceDep) -> list[ApiKeyInfoOut]:
    return admin.list_api_keys(svc)


@router.delete(
    "/api-keys/{name}",
    status_code=204,
    responses=error_responses(401, 403, 404, 429),
    summary="Revoke a staff API key; it stops working at once",
)
def revoke_api_key(name: str, who: AdminDep, svc: ServiceDep) -> None:
    admin.revoke_api_key(svc, name, actor=who.name)


@router.get(
    "/drift",
    responses=error_responses(401, 403, 404, 429),
    dependencies=[ADMIN],
    summary="Drift of the serving model: latest stored photos against the card's reference",
)
def get_drift(svc: ServiceDep, settings: SettingsDep) -> dict[str, Any]:
    """Per signal the chi-square statistic, p-value, PSI and whether it drifted, and the
    estimated accuracy (mean top-class calibrated probability); 404 without a reference."""
    return drift_report(svc, settings.drift_window).to_dict()
