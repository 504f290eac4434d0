"""Staff search (issue 18, "Find"): filters, sorts, cursor pages, CSV export, full record.

Two kinds of returns, on SQLite and PostgreSQL (the ``shop`` fixture):

- a few made through the real flow (open, upload photos, dock inspection, verdict), to
  show the search facts copied onto the return (``serving.storage.search_facts``) follow
  the decisions and inspections the services store;
- sixty inserted as rows (the photo flow takes a second a return; the filters need many
  returns with chosen values, ties in time and price included). Their search facts are
  written as the writers would write them (the order line's price, the item's category).
  Every expectation is computed here from what the test inserted.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from serving.services import return_search, review
from serving.services.inputs import (
    ReturnQuery,
    ReviewRequest,
)
from serving.services.service import ReturnLensService
from serving.storage.tables import (
    CatalogItem,
    Customer,
    Order,
    OrderLine,
    Return,
    ReturnFlag,
)
from tests.service_data import routed_damaged
from tests.shop import Shop, jpeg, red, scene

URL = "/v1/staff/returns"
BASE = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
SKUS = {"s-a": "kitchen", "s-b": "kitchen", "s-c": "toys"}
CUSTOMERS = ("c-x", 'c-"quoted",1')  # the second needs CSV quoting
STATUSES = ("approved", "needs_review", "rejected", "received", "dispositioned")
OUTCOMES = ("approved", "needs_review", "retake", None)
GRADES = ("A_new", "C_worn", "E_damaged", None)
FLAGS = ("crack", "reused_photo", "wrong_item")
REASONS = ("changed_mind", "defective", "wrong_item")
PRICES = (10.0, 25.5, 25.5, 99.99)  # ties on purpose
CHANNELS = ("resale", "refurbish", None)


@dataclass(frozen=True)
class Seeded:
    id: str
    created_at: datetime
    status: str
    sku: str
    category: str
    customer_id: str
    reason: str
    price: float
    outcome: str | None
    grade: str | None
    flags: tuple[str, ...]
    channel: str | None


def _seed(shop: Shop, n: int = 60) -> list[Seeded]:
    rng = random.Random(18)
    rows = [
        Seeded(
            id=f"ret_seed{i:03d}{rng.randrange(16**6):06x}",
            created_at=BASE + timedelta(hours=7 * (i // 3)),  # three returns per instant
            status=rng.choice(STATUSES),
            sku=(sku := rng.choice(sorted(SKUS))),
            category=SKUS[sku],
            customer_id=rng.choice(CUSTOMERS),
            reason=rng.choice(REASONS),
            price=rng.choice(PRICES),
            outcome=rng.choice(OUTCOMES),
            grade=rng.choice(GRADES),
            flags=tuple(sorted(rng.sample(FLAGS, rng.randrange(3)))),
            channel=rng.choice(CHANNELS),
        )
        for i in range(n)
    ]
    engine = create_engine(shop.settings.database_url)
    try:
        with Session(engine) as s, s.begin():
            s.add_all(Customer(id=c, email=None, created_at=BASE) for c in CUSTOMERS)
            s.add_all(
                CatalogItem(sku=k, category=c, name=k, price=1.0, updated_at=BASE)
                for k, c in SKUS.items()
            )
            s.flush()
            for r in rows:
                s.add(Order(id=f"o-{r.id}", customer_id=r.customer_id, created_at=BASE))
                s.flush()
                s.add(OrderLine(order_id=f"o-{r.id}", sku=r.sku, price=r.price, quantity=1))
                s.flush()
                s.add(
                    Return(
                        id=r.id,
                        order_id=f"o-{r.id}",
                        sku=r.sku,
                        customer_id=r.customer_id,
                        reason=r.reason,
                        note=None,
                        status=r.status,
                        shopper_token_hash="0" * 64,
                        created_at=r.created_at,
                        updated_at=r.created_at,
                        price=r.price,
                        category=r.category,
                        latest_outcome=r.outcome,
                        latest_grade=r.grade,
                        latest_channel=r.channel,
                    )
                )
                s.flush()
                s.add_all(ReturnFlag(return_id=r.id, code=f) for f in r.flags)
    finally:
        engine.dispose()
    return rows


def _walk(shop: Shop, params: dict[str, Any], limit: int = 7) -> list[dict[str, Any]]:
    """Every page of a listing, following next_cursor."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(100):
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        r = shop.client.get(URL, params=query, headers=shop.headers("reviewer"))
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["items"]) <= limit
        items.extend(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("the cursor never ended")


def _ordered(rows: list[Seeded], sort: str = "-created_at") -> list[str]:
    key: Callable[[Seeded], Any] = (
        (lambda r: (r.price, r.id)) if "price" in sort else (lambda r: (r.created_at, r.id))
    )
    return [r.id for r in sorted(rows, key=key, reverse=sort.startswith("-"))]


@pytest.fixture
def seeded(shop: Shop) -> Iterator[list[Seeded]]:
    assert shop.client.get(URL, headers=shop.headers("reviewer")).json()["items"] == []
    yield _seed(shop)


FILTERS: list[tuple[dict[str, Any], Callable[[Seeded], bool]]] = [
    ({}, lambda r: True),
    ({"status": "approved"}, lambda r: r.status == "approved"),
    ({"status": ["rejected", "received"]}, lambda r: r.status in ("rejected", "received")),
    ({"outcome": "needs_review"}, lambda r: r.outcome == "needs_review"),
    ({"flag": "crack"}, lambda r: "crack" in r.flags),
    ({"flag": "wrong_item"}, lambda r: "wrong_item" in r.flags),
    ({"grade": "E_damaged"}, lambda r: r.grade == "E_damaged"),
    ({"reason": "defective"}, lambda r: r.reason == "defective"),
    ({"category": "kitchen"}, lambda r: r.category == "kitchen"),
    ({"sku": "s-c"}, lambda r: r.sku == "s-c"),
    ({"customer_id": CUSTOMERS[1]}, lambda r: r.customer_id == CUSTOMERS[1]),
    ({"channel": "refurbish"}, lambda r: r.channel == "refurbish"),
    (
        {"created_from": "2026-03-03T03:00:00Z", "created_to": "2026-03-05T10:00:00+00:00"},
        lambda r: (
            datetime(2026, 3, 3, 3, tzinfo=UTC)
            <= r.created_at
            <= datetime(2026, 3, 5, 10, tzinfo=UTC)
        ),
    ),
    (  # a bare date: from its start, through its whole day
        {"created_from": "2026-03-04", "created_to": "2026-03-06"},
        lambda r: (
            datetime(2026, 3, 4, tzinfo=UTC) <= r.created_at < datetime(2026, 3, 7, tzinfo=UTC)
        ),
    ),
    ({"price_min": 25.5, "price_max": 25.5}, lambda r: r.price == 25.5),  # both inclusive
    ({"price_min": 20}, lambda r: r.price >= 20),
    (
        {"category": "kitchen", "price_max": 30, "flag": "crack", "status": STATUSES[:3]},
        lambda r: (
            r.category == "kitchen"
            and r.price <= 30
            and "crack" in r.flags
            and r.status in STATUSES[:3]
        ),
    ),
]


@pytest.mark.parametrize("sort", ["-created_at", "price"])
def test_every_filter_returns_exactly_the_matching_returns(
    shop: Shop, seeded: list[Seeded], sort: str
) -> None:
    for params, keep in FILTERS:
        expected = _ordered([r for r in seeded if keep(r)], sort)
        got = [i["return_id"] for i in _walk(shop, {**params, "sort": sort})]
        assert got == expected, params
    assert any(len([r for r in seeded if keep(r)]) > 7 for _, keep in FILTERS[1:])


@pytest.mark.parametrize("sort", ["created_at", "-created_at", "price", "-price"])
@pytest.mark.parametrize("limit", [1, 7, 200])
def test_pages_walk_the_whole_set_in_order_without_duplicates_or_gaps(
    shop: Shop, seeded: list[Seeded], sort: str, limit: int
) -> None:
    items = _walk(shop, {"sort": sort}, limit=limit)
    assert [i["return_id"] for i in items] == _ordered(seeded, sort)
    by_id = {r.id: r for r in seeded}
    for item in items[:5]:
        r = by_id[item["return_id"]]
        assert item["price"] == r.price and item["category"] == r.category
        assert item["outcome"] == r.outcome and item["grade"] == r.grade
        assert item["flags"] == list(r.flags) and item["channel"] == r.channel
        assert item["detail_url"] == f"{URL}/{r.id}"


def _cell(value: Any) -> str:
    return "" if value is None else " ".join(value) if isinstance(value, list) else str(value)


def test_csv_export_matches_the_list_and_streams_in_batches(
    shop: Shop, seeded: list[Seeded], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(return_search, "CSV_BATCH", 7)  # several batches from 60 rows
    params = {"category": "kitchen", "sort": "-price"}
    listed = _walk(shop, params)
    with shop.client.stream(
        "GET", f"{URL}.csv", params=params, headers=shop.headers("reviewer")
    ) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        chunks = [c for c in r.iter_bytes() if c]
    assert len(chunks) > len(listed) // 7  # one chunk per batch, not one buffered body
    rows = list(csv.DictReader(io.StringIO(b"".join(chunks).decode())))
    assert [row["return_id"] for row in rows] == [i["return_id"] for i in listed]
    assert len(listed) > 7 and any(i["customer_id"] == CUSTOMERS[1] for i in listed)
    for row, item in zip(rows, listed, strict=True):
        assert row == {k: _cell(v) for k, v in item.items() if k != "detail_url"}


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("", {"colour": "red"}, "unknown_field"),
    ("", {"created_from": "2026-03-05", "created_to": "2026-03-01"}, "invalid_range"),
    ("", {"price_min": 50, "price_max": 10}, "invalid_range"),
    ("", {"created_from": "yesterday"}, "invalid_date"),
    ("", {"created_to": "2026-02-30"}, "invalid_date"),
    ("", {"limit": 201}, "invalid_field"),
    ("", {"limit": 0}, "invalid_field"),
    ("", {"status": "bogus"}, "invalid_field"),
    ("", {"sort": "name"}, "invalid_field"),
    ("", {"cursor": "!!not-base64!!"}, "invalid_cursor"),
    ("", {"cursor": "bm90IGpzb24"}, "invalid_cursor"),  # base64url of "not json"
    (".csv", {"limit": 5}, "unknown_field"),  # the export has no pages
    (".csv", {"price_min": 9, "price_max": 1}, "invalid_range"),
]


@pytest.mark.parametrize(("suffix", "params", "code"), BAD)
def test_bad_input_is_a_json_422_with_its_code(
    shop: Shop, suffix: str, params: dict[str, Any], code: str
) -> None:
    r = shop.client.get(f"{URL}{suffix}", params=params, headers=shop.headers("reviewer"))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["code"] == code, r.json()
    if code == "unknown_field":
        assert r.json()["details"]["fields"] == list(params)


def test_a_cursor_of_another_sort_is_refused(shop: Shop, seeded: list[Seeded]) -> None:
    page = shop.client.get(URL, params={"sort": "price", "limit": 3}, headers=shop.headers("admin"))
    cursor = page.json()["next_cursor"]
    assert cursor
    r = shop.client.get(URL, params={"cursor": cursor}, headers=shop.headers("admin"))
    assert r.status_code == 422 and r.json()["code"] == "invalid_cursor"


@pytest.mark.parametrize("path", [URL, f"{URL}.csv", f"{URL}/ret_nope"])
def test_staff_only(shop: Shop, path: str) -> None:
    assert shop.client.get(path).status_code == 401
    denied = shop.client.get(path, headers=shop.headers("dock"))
    assert denied.status_code == 403 and denied.json()["code"] == "forbidden"
    expected = 404 if path.endswith("ret_nope") else 200
    for role in ("reviewer", "admin"):
        assert shop.client.get(path, headers=shop.headers(role)).status_code == expected


def _decision(r: Any) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    decision: dict[str, Any] = r.json()["decision"]
    return decision


def _flow(shop: Shop) -> tuple[str, dict[str, Any], dict[str, Any], str, dict[str, Any]]:
    """Through the services: an accepted return inspected at the dock, and a flagged one
    waiting for review. (return id, decision, inspection, flagged id, its decision)"""
    rid, token = shop.open_return()
    good = _decision(shop.upload(rid, token, jpeg(scene(1, "box"))))
    photos = [("photos", ("dock.jpg", jpeg(scene(12, "box")), "image/jpeg"))]
    ins = shop.client.post(
        "/v1/dock/inspections",
        files=photos,
        data={"return_id": rid, "station_id": "dock-1"},
        headers={**shop.headers("dock"), "Idempotency-Key": "search-1"},
    ).json()
    bad_id, bad_token = shop.open_return(reason="defective")
    bad = _decision(shop.upload(bad_id, bad_token, jpeg(red(scene(1, "box")))))
    assert bad["outcome"] == "needs_review" and bad["flags"]
    return rid, good, ins, bad_id, bad


def test_search_facts_follow_the_services_and_the_full_record(shop: Shop) -> None:
    reviewer = shop.headers("reviewer")
    fresh, _ = shop.open_return(order_id="ORD-2", email="bob@example.com")
    row = shop.client.get(URL, params={"customer_id": "C-2"}, headers=reviewer).json()["items"]
    assert [(i["return_id"], i["price"], i["category"], i["outcome"]) for i in row] == [
        (fresh, 49.0, "box", None)
    ]
    rid, good, ins, bad_id, bad = _flow(shop)
    listed = {i["return_id"]: i for i in shop.client.get(URL, headers=reviewer).json()["items"]}
    for return_id, decision in ((rid, good), (bad_id, bad)):
        item = listed[return_id]
        assert item["outcome"] == decision["outcome"]
        assert item["grade"] == (decision["grade"] or {}).get("label")
        assert item["flags"] == sorted({f["code"] for f in decision["flags"]})
    assert listed[rid]["channel"] == ins["channel"] is not None
    assert listed[bad_id]["channel"] is None
    flag = bad["flags"][0]["code"]
    by_flag = shop.client.get(URL, params={"flag": flag}, headers=reviewer).json()["items"]
    assert bad_id in [i["return_id"] for i in by_flag]
    by_channel = shop.client.get(URL, params={"channel": ins["channel"]}, headers=reviewer)
    assert [i["return_id"] for i in by_channel.json()["items"]] == [rid]

    verdict = shop.client.post(
        "/v1/review/verdicts",
        json={"subject_type": "return", "subject_id": bad_id, "verdict": "approve"},
        headers=reviewer,
    )
    assert verdict.status_code == 201, verdict.text
    record = shop.client.get(f"{URL}/{bad_id}", headers=reviewer).json()
    assert record["return_detail"]["return_id"] == bad_id
    assert record["return_detail"]["decision"]["decision_id"] == bad["decision_id"]
    assert [r["review_id"] for r in record["reviews"]] == [verdict.json()["review_id"]]
    assert record["staff_timeline"][-1]["actor"] == "reviewer:test-reviewer"
    assert record["inspections"] == []
    record = shop.client.get(f"{URL}/{rid}", headers=reviewer).json()
    assert [i["inspection_id"] for i in record["inspections"]] == [ins["inspection_id"]]
    assert [p["photo_id"] for p in record["return_detail"]["photos"]] == good["photo_ids"]
    assert {e["status"] for e in record["staff_timeline"]} >= {"approved", "received"}
    missing = shop.client.get(f"{URL}/ret_missing", headers=reviewer)
    assert missing.status_code == 404 and missing.json()["code"] == "unknown_return"


FACTS = "SELECT id, price, category, latest_outcome, latest_grade, latest_channel FROM returns"


def _facts(url: str) -> tuple[set[tuple[Any, ...]], set[tuple[Any, ...]]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = {tuple(r) for r in conn.exec_driver_sql(FACTS)}
            flags = {tuple(r) for r in conn.exec_driver_sql("SELECT * FROM return_flags")}
    finally:
        engine.dispose()
    return rows, flags


def test_migration_0011_backfills_what_the_writers_write(shop: Shop) -> None:
    """Facts written by the services, dropped by a downgrade to 0010, come back equal
    from 0011's backfill."""
    from alembic import command
    from alembic.config import Config

    from serving.storage.db import MIGRATIONS_DIR

    rid, _, ins, bad_id, bad = _flow(shop)
    shop.open_return(order_id="ORD-2", email="bob@example.com")  # no decision yet
    url = shop.settings.database_url
    written = _facts(url)
    by_id = {row[0]: row for row in written[0]}
    assert by_id[rid][5] == ins["channel"] and by_id[bad_id][3] == "needs_review"
    assert {code for r, code in written[1] if r == bad_id} == {f["code"] for f in bad["flags"]}
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url)
    command.downgrade(cfg, "0010")
    engine = create_engine(url)
    try:
        with engine.connect() as conn, pytest.raises(DBAPIError):  # the facts are gone
            conn.exec_driver_sql(FACTS)
    finally:
        engine.dispose()
    command.upgrade(cfg, "head")
    assert _facts(url) == written


def test_a_redisposition_moves_the_return_between_channels(svc: ReturnLensService) -> None:
    """The channel fact follows a reviewer's verdict on the inspection (redisposition)."""
    rid, routed = routed_damaged(svc)

    def found(channel: str | None = None) -> list[str]:
        page = return_search.search(svc, ReturnQuery(channel=channel))
        return [i.return_id for i in page.items]

    assert found(routed.channel) == [rid]
    verdict = ReviewRequest(
        subject_type="inspection", subject_id=routed.inspection_id, verdict="reject"
    )
    review.submit_review(svc, verdict, reviewer="dora")
    assert found(routed.channel) == []
    assert [i.channel for i in return_search.search(svc, ReturnQuery()).items] == [None]
