"""Staff search at scale: 100,000 generated returns, p50/p95 of every filter, sort and page.

    python -m benchmarks.search_bench                    # SQLite under benchmarks/results/tmp
    python -m benchmarks.search_bench --db-url postgresql+psycopg://...   # an empty database
    returnlens bench --only search                       # the same, SQLite, in the harness

Rows are bulk-inserted (customers, catalog, orders, order lines, returns with their
search facts, return_flags) with skewed, shop-like distributions: most returns resolved
or closed, a few waiting for review; outcomes mostly approved; a quarter of the latest
decisions flagged, some flags rare; categories, SKUs and repeat customers Zipf-like;
prices log-normal around 40; a year of creation times. The database is migrated by
Alembic (the indexes are the migrations'), and SQLite gets no ANALYZE: the figures are what a
fresh deployment gets (on PostgreSQL the tables are ANALYZEd after the load, as
autovacuum would do within a minute). Each query is ``serving.services.return_search.search`` (the
service call behind ``GET /v1/staff/returns``: SQL, rows, the page's flags, the pydantic
models; no HTTP), ``REPEATS`` times after a warm-up; the CSV export is walked to its end
with ``tracemalloc`` on, to show its memory does not grow with the range.
Writes ``benchmarks/results/search.json`` (or ``search_postgresql.json``).
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import time
import tracemalloc
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import insert, select

from benchmarks.harness.common import machine_info, write_json
from serving.services import return_search
from serving.services.inputs import ReturnFilter, ReturnQuery
from serving.services.service import ReturnLensService
from serving.storage.db import Database
from serving.storage.tables import (
    CatalogItem,
    Customer,
    Order,
    OrderLine,
    Return,
    ReturnFlag,
)

OUT = Path("benchmarks/results")
TMP = OUT / "tmp" / "search"
REPEATS = 25
NOW = datetime(2026, 12, 1, tzinfo=UTC)
STATUSES = {
    "resolved": 25, "closed": 20, "dispositioned": 10, "approved": 10, "awaiting_photos": 8,
    "needs_review": 5, "rejected": 5, "label_issued": 5, "expired": 4, "received": 3,
    "graded": 2, "retake": 2, "reviewed": 1,
}  # fmt: skip
OUTCOMES = {"approved": 70, "needs_review": 15, "retake": 8, "rejected": 7}
GRADES = {"A_new": 35, "B_good": 30, "C_worn": 20, "D_poor": 10, "E_damaged": 5}
FLAGS = {
    "low_confidence": 40, "repeat_returner": 20, "crack": 15, "high_value": 12,
    "reason_mismatch": 6, "wrong_item": 4, "reused_photo": 2, "unfamiliar_photo": 1,
}  # fmt: skip
REASONS = {
    "changed_mind": 35, "does_not_fit": 25, "defective": 15, "not_as_described": 12,
    "damaged_in_transit": 8, "wrong_item": 5,
}  # fmt: skip
CHANNELS = {"resale": 50, "refurbish": 25, "liquidate": 15, "recycle": 10}
ROUTED = ("dispositioned", "resolved", "closed")


def _pick(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


@dataclass(frozen=True)
class Shape:
    returns: int
    customers: int
    skus: int
    categories: int


def shape(n: int) -> Shape:
    return Shape(returns=n, customers=max(10, n // 3), skus=max(10, n // 50), categories=25)


def generate(db: Database, sh: Shape, seed: int = 18) -> dict[str, Any]:
    """Bulk-insert the shop and ``sh.returns`` returns; returns values the queries use."""
    rng = random.Random(seed)
    cats = [f"cat-{i:02d}" for i in range(sh.categories)]
    cat_w = [1 / (i + 1) for i in range(sh.categories)]
    skus = [(f"SKU-{i:05d}", rng.choices(cats, cat_w)[0]) for i in range(sh.skus)]
    sku_w = [1 / (i + 1) ** 0.8 for i in range(sh.skus)]
    cust_w = [1 / (i + 1) ** 0.6 for i in range(sh.customers)]
    customers = [f"C-{i:06d}" for i in range(sh.customers)]
    rows: dict[str, list[dict[str, Any]]] = {
        "customers": [{"id": c, "email": None, "created_at": NOW} for c in customers],
        "catalog": [
            {"sku": s, "category": c, "name": s, "price": 1.0, "updated_at": NOW} for s, c in skus
        ],
        "orders": [],
        "lines": [],
        "returns": [],
        "flags": [],
    }
    for i in range(sh.returns):
        sku, category = rng.choices(skus, sku_w)[0]
        customer = rng.choices(customers, cust_w)[0]
        status = _pick(rng, STATUSES)
        price = round(min(5000.0, rng.lognormvariate(3.7, 0.9)), 2)
        created = NOW - timedelta(seconds=rng.randrange(365 * 86400))
        decided = status not in ("awaiting_photos", "expired")
        rid = f"ret_{rng.getrandbits(96):024x}"
        rows["orders"].append({"id": f"O-{i:07d}", "customer_id": customer, "created_at": created})
        rows["lines"].append({"order_id": f"O-{i:07d}", "sku": sku, "price": price, "quantity": 1})
        rows["returns"].append(
            {
                "id": rid, "order_id": f"O-{i:07d}", "sku": sku, "customer_id": customer,
                "reason": _pick(rng, REASONS), "note": None, "status": status,
                "shopper_token_hash": "0" * 64, "created_at": created, "updated_at": created,
                "price": price, "category": category,
                "latest_outcome": _pick(rng, OUTCOMES) if decided else None,
                "latest_grade": _pick(rng, GRADES) if decided else None,
                "latest_channel": _pick(rng, CHANNELS) if status in ROUTED else None,
            }
        )  # fmt: skip
        if decided and rng.random() < 0.25:
            codes = {_pick(rng, FLAGS) for _ in range(rng.choice((1, 1, 2)))}
            rows["flags"].extend({"return_id": rid, "code": c} for c in codes)
    tables = (
        (Customer, "customers"),
        (CatalogItem, "catalog"),
        (Order, "orders"),
        (OrderLine, "lines"),
        (Return, "returns"),
        (ReturnFlag, "flags"),
    )
    with db.write() as s:
        for table, key in tables:
            for start in range(0, len(rows[key]), 5000):
                s.execute(insert(table), rows[key][start : start + 5000])
    return {
        "top_category": cats[0],
        "rare_category": cats[-1],
        "top_sku": skus[0][0],
        "repeat_customer": customers[0],
        "flag_rows": len(rows["flags"]),
    }


def _timed(fn: Any, repeats: int) -> dict[str, Any]:
    fn()  # warm-up (statement cache, pages in the OS cache)
    times = []
    result = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    rows = len(result.items) if result is not None and hasattr(result, "items") else None
    return {
        "p50_ms": round(statistics.median(times), 2),
        "p95_ms": round(p95, 2),
        "max_ms": round(times[-1], 2),
        "rows": rows,
    }


def queries(v: dict[str, Any]) -> dict[str, dict[str, Any]]:
    month = (NOW - timedelta(days=30)).date().isoformat()
    day = (NOW - timedelta(days=100)).date().isoformat()
    return {
        "all, newest first": {},
        "status=needs_review": {"status": ["needs_review"]},
        "status=approved|reviewed": {"status": ["approved", "reviewed"]},
        "status=graded|received (rare)": {"status": ["graded", "received"]},
        "outcome=rejected": {"outcome": "rejected"},
        "flag=low_confidence (common)": {"flag": "low_confidence"},
        "flag=unfamiliar_photo (rare)": {"flag": "unfamiliar_photo"},
        "flag nobody has": {"flag": "no_such_flag"},
        "grade=E_damaged": {"grade": "E_damaged"},
        "reason=defective": {"reason": "defective"},
        "category (most common)": {"category": v["top_category"]},
        "category (rarest)": {"category": v["rare_category"]},
        "sku (most returned)": {"sku": v["top_sku"]},
        "customer (most returns)": {"customer_id": v["repeat_customer"]},
        "created in the last 30 days": {"created_from": month},
        "created on one day": {"created_from": day, "created_to": day},
        "price 100..200": {"price_min": 100, "price_max": 200},
        "channel=refurbish": {"channel": "refurbish"},
        "nothing matches": {"grade": "Z_none"},
        "sort=price": {"sort": "price"},
        "sort=-price, price >= 1000": {"sort": "-price", "price_min": 1000},
        "category + status + price, sort=-price": {
            "category": v["top_category"],
            "status": ["resolved", "closed"],
            "price_max": 50,
            "sort": "-price",
        },
        "common category + rare flag": {"category": v["top_category"], "flag": "unfamiliar_photo"},
        "status=needs_review + created last 30 days": {
            "status": ["needs_review"],
            "created_from": month,
        },
    }


def run_search(
    db_url: str | None = None, n: int = 100_000, repeats: int = REPEATS, folder: Path = TMP
) -> dict[str, Any]:
    """Generate, migrate, measure; the figures as a dict (the harness writes it). Without
    ``db_url``: a new SQLite file in ``folder``."""
    if db_url is None:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"search-{n}.db"
        path.unlink(missing_ok=True)
        db_url = f"sqlite:///{path}"
    db = Database(db_url)
    try:
        db.upgrade()
        t0 = time.perf_counter()
        values = generate(db, shape(n))
        generated_s = time.perf_counter() - t0
        if db.dialect == "postgresql":  # what autovacuum does within a minute of the load
            with db.engine.connect() as conn:
                conn.exec_driver_sql("ANALYZE")
                conn.commit()
        svc = cast(ReturnLensService, _Svc(db))
        figures = {}
        for name, params in queries(values).items():
            q = ReturnQuery(**params)
            figures[name] = _timed(lambda q=q: return_search.search(svc, q), repeats)
        pages = _pages(svc, repeats)
        csv_export = _csv(svc)
        with db.read() as s:
            count = len(s.execute(select(Return.id)).all())
    finally:
        db.dispose()
    worst = max(f["p95_ms"] for f in [*figures.values(), *pages.values()])
    return {
        "database": db.dialect,
        "returns": count,
        "flag_rows": values["flag_rows"],
        "generate_seconds": round(generated_s, 1),
        "repeats": repeats,
        "page_size": 50,
        "queries": figures,
        "cursor_pages": pages,
        "csv_export": csv_export,
        "worst_p95_ms": worst,
        "target_p95_ms": 50,
        "machine": machine_info(),
    }


@dataclass
class _Svc:
    """What ``return_search`` reads from the service: only its database."""

    db: Database


def _pages(svc: ReturnLensService, repeats: int) -> dict[str, dict[str, Any]]:
    """Pages 2-11 of a listing (each timing is one page, cycling through them) and a page
    half-way through the table: keyset pages cost what the first page costs."""
    out = {}
    for sort in ("-created_at", "price"):
        qs: list[ReturnQuery] = []
        page = return_search.search(svc, ReturnQuery(sort=sort))
        while len(qs) < 10 and page.next_cursor is not None:
            qs.append(ReturnQuery(sort=sort, cursor=page.next_cursor))
            page = return_search.search(svc, qs[-1])
        turn = itertools.cycle(qs)
        out[f"sort={sort}, pages 2-11"] = _timed(
            lambda turn=turn: return_search.search(svc, next(turn)), repeats
        )
        with svc.db.read() as s:
            total = len(s.execute(select(Return.id)).all())
        deep = ReturnQuery(sort=sort, limit=200)
        for _ in range(total // 400):  # half the rows, 200 at a time
            cursor = return_search.search(svc, deep).next_cursor
            deep = ReturnQuery(sort=sort, limit=200, cursor=cursor)
        q = ReturnQuery(sort=sort, cursor=deep.cursor)
        out[f"sort={sort}, page at row {total // 400 * 200:,}"] = _timed(
            lambda q=q: return_search.search(svc, q), repeats
        )
    return out


def _csv(svc: ReturnLensService) -> dict[str, Any]:
    """The whole table as CSV: time, bytes, and the peak Python memory while streaming."""
    tracemalloc.start()
    t0 = time.perf_counter()
    size = lines = 0
    for chunk in return_search.csv_chunks(svc, ReturnFilter()):
        size += len(chunk)
        lines += chunk.count("\r\n")
    seconds = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "rows": lines - 1,
        "mib": round(size / 2**20, 1),
        "seconds": round(seconds, 1),
        "peak_traced_mib": round(peak / 2**20, 2),
        "batch": return_search.CSV_BATCH,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--db-url", help="an empty database (default: a new SQLite file)")
    p.add_argument("--returns", type=int, default=100_000)
    p.add_argument("--repeats", type=int, default=REPEATS)
    p.add_argument("--out", type=Path, help="the JSON file (default benchmarks/results/...)")
    args = p.parse_args(argv)
    data = run_search(args.db_url, args.returns, args.repeats)
    name = "search.json" if data["database"] == "sqlite" else f"search_{data['database']}.json"
    path = write_json(args.out or OUT / name, data)
    for query, f in {**data["queries"], **data["cursor_pages"]}.items():
        print(f"{f['p50_ms']:8.2f} {f['p95_ms']:8.2f}  {query}")
    print(f"csv: {data['csv_export']}; worst p95 {data['worst_p95_ms']} ms -> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
