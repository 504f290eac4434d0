"""Hostile sizes, dates and nesting: refused at the API with a code, the same on both
databases, never a 500.

- **String lengths.** Every bounded input field takes its limit from the number its
  column is sized with (``serving/storage/lengths.py``). The pairs are listed here and
  checked both ways (the value at the limit is accepted, one character more is
  refused); then over HTTP on SQLite *and* PostgreSQL, where a value longer than its
  ``VARCHAR`` used to pass on SQLite and be a ``StringDataRightTruncation`` 500 on
  PostgreSQL: the value at the limit is stored, one past it is a 422 naming the field.
- **Dates.** A delivery date must lie in [1970, 2200): year 9999 (which overflowed the
  return-window sum later) and the offsets that push year 1 or 9999 out of Python's
  range are a field error on the admin route itself.
- **Nesting.** A JSON body of 100,000 nested ``[`` is a 400 ``json_too_deep`` on every
  JSON route, the routes that parse JSON themselves (admin loaders) included.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError
from sqlalchemy import Column, create_engine, text

from serving.services.inputs import (
    ApiKeyRequest,
    CatalogRow,
    CreateReturnRequest,
    InspectionRequest,
    OrderRow,
    ReviewRequest,
)
from serving.storage.tables import (
    ApiKey,
    CatalogItem,
    Customer,
    Inspection,
    Order,
    OrderLine,
    Return,
    Review,
)
from tests.shop import ADMIN_KEY, EMAIL, Shop, jpeg, scene

ADMIN = {"X-API-Key": ADMIN_KEY}
VALID: dict[type[BaseModel], dict[str, Any]] = {
    CreateReturnRequest: {"order_id": "O", "sku": "S", "reason": "changed_mind"},
    CatalogRow: {"sku": "S", "category": "c", "name": "N", "price": 1.0},
    OrderRow: {"order_id": "O", "customer_id": "C", "sku": "S", "price": 1.0},
    ReviewRequest: {"subject_type": "return", "subject_id": "ret_1", "verdict": "approve"},
    InspectionRequest: {"photos": [b"x"], "idempotency_key": "k", "station_id": "s"},
    ApiKeyRequest: {"name": "n", "role": "dock"},
}
# (input model, field) -> the column that stores it.
PAIRS: list[tuple[type[BaseModel], str, Any]] = [
    (CreateReturnRequest, "order_id", Return.order_id),
    (CreateReturnRequest, "sku", Return.sku),
    (CreateReturnRequest, "email", Customer.email),
    (CatalogRow, "sku", CatalogItem.sku),
    (CatalogRow, "category", CatalogItem.category),
    (CatalogRow, "name", CatalogItem.name),
    (OrderRow, "order_id", Order.id),
    (OrderRow, "customer_id", Customer.id),
    (OrderRow, "customer_email", Customer.email),
    (OrderRow, "sku", OrderLine.sku),
    (ReviewRequest, "subject_id", Review.subject_id),
    (ReviewRequest, "grade", Review.grade),
    (InspectionRequest, "return_id", Inspection.claimed_return_id),
    (InspectionRequest, "idempotency_key", Inspection.idempotency_key),
    (InspectionRequest, "station_id", Inspection.station_id),
    (ApiKeyRequest, "name", ApiKey.name),
]


def _text(field: str, n: int) -> str:
    """A valid value of exactly ``n`` characters for ``field``."""
    if "email" in field:
        return "a" * (n - len("@example.com")) + "@example.com"
    return "a" * n


def _length(column: Any) -> int:
    col: Column[Any] = column.property.columns[0]
    length = getattr(col.type, "length", None)
    assert isinstance(length, int), f"{col} has no length"
    return length


@pytest.mark.parametrize(("model", "field", "column"), PAIRS, ids=lambda v: getattr(v, "key", v))
def test_every_bounded_field_takes_its_columns_length(
    model: type[BaseModel], field: str, column: Any
) -> None:
    limit = _length(column)
    model.model_validate({**VALID[model], field: _text(field, limit)})
    with pytest.raises(ValidationError) as err:
        model.model_validate({**VALID[model], field: _text(field, limit + 1)})
    assert err.value.errors()[0]["loc"][0] == field


def _error(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text[:500])
    body = r.json()
    assert body["code"] == code, body
    assert isinstance(body["message"], str) and len(body["message"]) > 10
    return body  # type: ignore[no-any-return]


def _stored(shop: Shop, sql: str, **params: Any) -> list[Any]:
    engine = create_engine(shop.settings.database_url)
    try:
        with engine.connect() as conn:
            return [r[0] for r in conn.execute(text(sql), params)]
    finally:
        engine.dispose()


def _inspect(shop: Shop, key: str, **fields: str) -> Any:
    return shop.client.post(
        "/v1/dock/inspections",
        files=[("photos", ("p.jpg", jpeg(scene(3)), "image/jpeg"))],
        data={"idempotency_key": key, **fields},
        headers=shop.headers("dock"),
    )


def test_dock_form_lengths_are_the_columns_on_both_databases(shop: Shop) -> None:
    limit = _length(Inspection.claimed_return_id)
    for n in (limit + 1, 300, 4000):  # the form itself allows 4,096 characters
        body = _error(_inspect(shop, f"k-{n}", return_id="R" * n), 422, "invalid_field")
        assert body["details"]["field"] == "return_id"
    counts = shop.counts()
    stored = _inspect(shop, "k-at-limit", return_id="R" * limit)
    assert stored.status_code == 201, stored.text
    assert stored.json()["status"] == "unmatched"
    claimed = _stored(shop, "SELECT claimed_return_id FROM inspections")
    assert claimed == ["R" * limit]
    key_limit, station_limit = _length(Inspection.idempotency_key), _length(Inspection.station_id)
    assert _inspect(shop, "k" * key_limit, station_id="s" * station_limit).status_code == 201
    _error(_inspect(shop, "k" * (key_limit + 1)), 422, "invalid_field")
    body = _error(
        _inspect(shop, "k-st", station_id="s" * (station_limit + 1)), 422, "invalid_field"
    )
    assert body["details"]["field"] == "station_id"
    assert shop.counts()["inspections"] == counts["inspections"] + 2


def test_json_and_csv_lengths_are_the_columns_on_both_databases(shop: Shop) -> None:
    c = shop.client
    sku, name = "s" * _length(CatalogItem.sku), "n" * _length(CatalogItem.name)
    row = {"sku": sku, "category": "c" * _length(CatalogItem.category), "name": name, "price": 5}
    assert c.put("/v1/admin/catalog", json=[row], headers=ADMIN).status_code == 200
    for field in ("sku", "category", "name"):
        long = {**row, field: str(row[field]) + "x"}
        body = _error(c.put("/v1/admin/catalog", json=[long], headers=ADMIN), 422, "invalid_field")
        assert body["details"]["field"] == f"item 0.{field}"
    email = _text("email", _length(Customer.email))
    order_id, customer = "o" * _length(Order.id), "c" * _length(Customer.id)
    csv_head = "order_id,customer_id,customer_email,sku,price,delivered_at\n"
    line = f"{order_id},{customer},{email},{sku},5.0,2026-01-02T10:00:00Z\n"
    ok = c.put(
        "/v1/admin/orders",
        content=csv_head + line,
        headers={**ADMIN, "Content-Type": "text/csv"},
    )
    assert ok.status_code == 200, ok.text
    assert _stored(shop, "SELECT email FROM customers WHERE id = :c", c=customer) == [email]
    too_long = csv_head + line.replace(email, "x" + email)
    r = c.put("/v1/admin/orders", content=too_long, headers={**ADMIN, "Content-Type": "text/csv"})
    assert _error(r, 422, "invalid_field")["details"]["field"] == "row 2.customer_email"
    r = c.post(
        "/v1/returns",
        json={
            "order_id": "o" * (_length(Return.order_id) + 1),
            "sku": "box-01",
            "reason": "changed_mind",
            "email": EMAIL,
        },
    )
    assert _error(r, 422, "invalid_field")["details"]["field"] == "order_id"
    name_limit = _length(ApiKey.name)
    good = {"name": "k" * name_limit, "role": "dock"}
    assert c.post("/v1/admin/api-keys", json=good, headers=ADMIN).status_code == 201
    r = c.post("/v1/admin/api-keys", json={**good, "name": "k" * (name_limit + 1)}, headers=ADMIN)
    assert _error(r, 422, "invalid_field")["details"]["field"] == "name"
    verdict = {
        "subject_type": "return",
        "subject_id": "r" * (_length(Review.subject_id) + 1),
        "verdict": "approve",
    }
    r = c.post("/v1/review/verdicts", json=verdict, headers=shop.headers("reviewer"))
    assert _error(r, 422, "invalid_field")["details"]["field"] == "subject_id"


@pytest.mark.parametrize(
    "when",
    [
        "9999-12-31T00:00:00Z",
        "9999-12-31T23:00:00-14:00",
        "0001-01-01T00:00:00+14:00",
        "0001-01-01T00:00:00Z",
        "1969-12-31T23:59:59Z",
        "2200-01-01T00:00:00Z",
    ],
)
def test_dates_outside_the_sane_range_are_field_errors(sqlite_shop: Shop, when: str) -> None:
    counts = sqlite_shop.counts()
    row = {
        "order_id": "ORD-DATE",
        "customer_id": "C-9",
        "customer_email": "d@example.com",
        "sku": "box-01",
        "price": 10,
        "delivered_at": when,
    }
    r = sqlite_shop.client.put("/v1/admin/orders", json=[row], headers=ADMIN)
    body = _error(r, 422, "invalid_field")
    assert body["details"]["field"] == "item 0.delivered_at"
    assert "1970-01-01" in body["message"] and "2200-01-01" in body["message"]
    csv = (
        "order_id,customer_id,customer_email,sku,price,delivered_at\n"
        f"ORD-DATE,C-9,d@example.com,box-01,10,{when}\n"
    )
    r = sqlite_shop.client.put(
        "/v1/admin/orders", content=csv, headers={**ADMIN, "Content-Type": "text/csv"}
    )
    assert _error(r, 422, "invalid_field")["details"]["field"] == "row 2.delivered_at"
    assert sqlite_shop.counts() == counts


def test_a_future_but_sane_delivery_date_never_breaks_returns(sqlite_shop: Shop) -> None:
    row = {
        "order_id": "ORD-LATE",
        "customer_id": "C-8",
        "customer_email": "late@example.com",
        "sku": "box-01",
        "price": 10,
        "delivered_at": "2199-12-31T23:59:59+00:00",
    }
    r = sqlite_shop.client.put("/v1/admin/orders", json=[row], headers=ADMIN)
    assert r.status_code == 200, r.text
    created = sqlite_shop.client.post(
        "/v1/returns",
        json={
            "order_id": "ORD-LATE",
            "sku": "box-01",
            "reason": "changed_mind",
            "email": "late@example.com",
        },
    )
    assert created.status_code == 201, created.text  # the window check has room to add


def _json_routes(shop: Shop) -> list[tuple[str, str]]:
    spec = shop.client.get("/openapi.json").json()
    routes = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            content = (op.get("requestBody") or {}).get("content", {})
            if "application/json" in content:
                routes.append((method, path.replace("{name}", "x").replace("{sku}", "box-01")))
    return sorted(routes)


def test_deeply_nested_json_is_a_400_on_every_json_route(sqlite_shop: Shop) -> None:
    routes = _json_routes(sqlite_shop)
    assert {("put", "/v1/admin/catalog"), ("put", "/v1/admin/orders")} <= set(routes)
    assert {("post", "/v1/returns"), ("post", "/v1/review/verdicts")} <= set(routes)
    counts = sqlite_shop.counts()
    for body in ("[" * 100_000, "[" * 100_000 + "]" * 100_000, '{"a":' * 100_000):
        for method, path in routes:
            r = sqlite_shop.client.request(
                method,
                path,
                content=body,
                headers={**ADMIN, "Content-Type": "application/json"},
            )
            _error(r, 400, "json_too_deep")
    assert sqlite_shop.counts() == counts
