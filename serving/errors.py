"""Every error leaves the API as JSON ``{code, message, details}`` with the right status.

Domain errors are mapped to HTTP statuses here and nowhere else: by exception class
(NotFound -> 404, Conflict -> 409, ...) with a few codes that need a more precise
status (an unsupported image type is 415, an oversized one 413). FastAPI's own
validation errors, and those of the service's input models built inside a route (the
dock form), become 422 ``invalid_field`` with a sentence naming the field, except a few
error types that are their own code (``CODED_ERROR_TYPES``: invalid_range, invalid_date,
invalid_cursor) and a query parameter a query model forbids (``unknown_field``, naming
them all). Starlette's HTTP errors (unknown route, wrong method, malformed multipart)
keep their status but get the same JSON shape. Anything unexpected is logged with its traceback
and answered with a 500 that reveals nothing; bad input must never get there.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from serving.domain_errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    StoreUnavailable,
    Unauthorized,
)
from vision.errors import ConfigError, DataError, DecodeError, ModelError, ReturnLensError

log = logging.getLogger("returnlens.api")

# Most specific first: the first class in an error's MRO found here decides.
STATUS_BY_CLASS: tuple[tuple[type[ReturnLensError], int], ...] = (
    (NotFound, 404),
    (Conflict, 409),
    (Invalid, 422),
    (Forbidden, 403),
    (Unauthorized, 401),
    (StoreUnavailable, 503),
    (DecodeError, 422),
    (DataError, 422),
    (ConfigError, 422),
    (ModelError, 503),
)
# Codes whose status differs from their class's.
STATUS_BY_CODE: Mapping[str, int] = {
    "unsupported_media_type": 415,
    "too_large": 413,
    "too_many_pixels": 413,
    "rate_limited": 429,
    "not_ready": 503,
    "uploads_busy": 503,
    "invalid_multipart": 400,
    "json_too_deep": 400,
}
# Starlette HTTPException statuses -> codes (unknown route, wrong method, ...).
CODE_BY_STATUS: Mapping[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    408: "request_timeout",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_field",
    429: "rate_limited",
    503: "not_ready",
}


class ErrorBody(BaseModel):
    """The one error shape (documented in OpenAPI for every 4xx/5xx response)."""

    code: str
    message: str
    details: dict[str, Any] = {}


class ServiceUnavailable(ReturnLensError):
    """The process is starting or stopping: the model or the database is not ready."""

    code = "not_ready"


class UploadsBusy(ReturnLensError):
    """A photo upload waited too long for room among the uploads this worker already
    holds (``serving/api/admission.py``): 503 with ``Retry-After``."""

    code = "uploads_busy"
    retry_after_s = 2


JSON_TOO_DEEP = (
    "the JSON body is nested too deeply to be read; send rows of plain values, "
    "not arrays or objects nested hundreds of levels deep"
)


def json_too_deep() -> Invalid:
    """The one refusal of a JSON body nested past the parser's recursion limit (400), for
    the routes that parse JSON themselves; FastAPI's body parsing gets the same answer
    from ``_http_handler``."""
    return Invalid(JSON_TOO_DEEP, code="json_too_deep")


def status_for(exc: ReturnLensError) -> int:
    if exc.code in STATUS_BY_CODE:
        return STATUS_BY_CODE[exc.code]
    for cls, status in STATUS_BY_CLASS:
        if isinstance(exc, cls):
            return status
    return 400


def error_response(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = {
        "code": code,
        "message": message,
        "details": details
        if isinstance(details, dict)
        else ({} if details is None else {"info": details}),
    }
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def _field_name(loc: Sequence[Any]) -> str:
    """``("body", "order_id")`` -> ``order_id``; ``("query", "sort")`` -> ``sort``."""
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "form")]
    return ".".join(parts) or "body"


def validation_message(errors: Sequence[Mapping[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """A sentence naming the first bad field, plus every problem in plain data."""
    problems = []
    for err in errors:
        field = _field_name(err.get("loc", ()))
        problems.append(
            {"field": field, "type": str(err.get("type", "")), "message": str(err.get("msg", ""))}
        )
    if not problems:
        return "the request is invalid", problems
    first = problems[0]
    if first["type"] == "missing":
        sentence = f"the field '{first['field']}' is required"
    elif first["type"] == "json_invalid":
        sentence = "the request body is not valid JSON"
    else:
        sentence = f"the field '{first['field']}' is invalid: {first['message']}"
    if len(problems) > 1:
        sentence += f" (and {len(problems) - 1} more problem(s))"
    return sentence, problems


async def _domain_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ReturnLensError)
    status = status_for(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    retry_after = getattr(exc, "retry_after_s", None)
    if retry_after is not None:  # a dependency is down, or the worker is full: retry later
        headers = {"Retry-After": str(retry_after)}
    details = exc.details if isinstance(exc.details, dict) else {"info": exc.details}
    return error_response(status, exc.code, exc.message, _jsonable(details), headers)


# Validation error types that are their own answer code (raised as PydanticCustomError by
# the input models, serving/services/inputs.py); every other one is ``invalid_field``.
CODED_ERROR_TYPES = frozenset({"invalid_range", "invalid_date", "invalid_cursor"})


def _unknown_query_fields(errors: Sequence[Mapping[str, Any]]) -> list[str]:
    """The query parameters a query model forbids (``extra="forbid"``), by name."""
    return [
        str(err["loc"][-1])
        for err in errors
        if err.get("type") == "extra_forbidden" and tuple(err.get("loc", ()))[:1] == ("query",)
    ]


async def _validation_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError | ValidationError)
    errors = exc.errors(include_url=False) if isinstance(exc, ValidationError) else exc.errors()
    sentence, problems = validation_message(errors)
    field = problems[0]["field"] if problems else None
    unknown = _unknown_query_fields(errors)
    if unknown:
        message = f"unknown query parameter(s): {', '.join(unknown)}"
        return error_response(422, "unknown_field", message, {"fields": unknown})
    code = problems[0]["type"] if problems else ""
    if code in CODED_ERROR_TYPES:
        return error_response(422, code, problems[0]["message"], {"errors": problems})
    return error_response(422, "invalid_field", sentence, {"field": field, "errors": problems})


async def _http_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = CODE_BY_STATUS.get(exc.status_code, "http_error")
    if exc.status_code == 400 and isinstance(exc.__cause__, RecursionError):
        # FastAPI's own JSON parsing of a body model (json.loads hit the recursion limit).
        return error_response(400, "json_too_deep", JSON_TOO_DEEP)
    if exc.status_code == 404:
        message = f"no such endpoint: {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    elif exc.status_code == 413:
        message = "the request body is larger than this endpoint accepts"
    else:
        message = str(exc.detail)
    return error_response(exc.status_code, code, message, None, exc.headers)


async def _disconnect_handler(request: Request, exc: Exception) -> JSONResponse:
    """The client went away (or was cut off for stalling) while its body was being read:
    nobody is left to read an answer, and it is no server error worth a traceback."""
    log.info("client disconnected during %s %s", request.method, request.url.path)
    return error_response(400, "client_disconnected", "the client closed the connection")


async def _unexpected_handler(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(
        500, "internal_error", "the server failed to handle this request; it has been logged"
    )


def _jsonable(value: Any) -> Any:
    """Details may carry tuples or numpy scalars; JSONResponse needs plain JSON types."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    item = getattr(value, "item", None)
    return item() if callable(item) else str(value)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ReturnLensError, _domain_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(ValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_handler)
    app.add_exception_handler(ClientDisconnect, _disconnect_handler)
    app.add_exception_handler(Exception, _unexpected_handler)


# Shared OpenAPI ``responses=`` entries so every route documents its error shape.
def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    described = {
        401: "Missing or unknown credential",
        403: "Credential lacks the role or scope",
        404: "Unknown resource",
        409: "Conflict (duplicate, replay mismatch)",
        413: "Body or photo too large",
        415: "Unsupported image type",
        422: "Invalid field or photo",
        429: "Rate limited",
        503: "Not ready, a dependency down, or busy with other uploads (Retry-After)",
    }
    # 422 always: FastAPI would otherwise document its own validation shape, which this
    # API never sends (validation errors use ErrorBody too).
    return {
        s: {"model": ErrorBody, "description": described.get(s, "Error")}
        for s in sorted({*statuses, 422})
    }
