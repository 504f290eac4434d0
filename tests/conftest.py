"""The suite's shared fixtures. Plain helpers live in helper modules beside this file:

- ``tests/requires.py``: what the machine must provide (Chromium, PostgreSQL 15) and the
  one rule when it is missing: skip naming it, or fail under ``CI=true``;
- ``tests/live.py``: free port, server subprocess start and bounded ``/readyz`` wait;
- ``tests/pg.py``: the throwaway PostgreSQL cluster and fresh databases;
- ``tests/s3.py``: a throwaway S3-compatible store (SeaweedFS ``weed mini``);
- ``tests/shop.py``: the API tests' demo shop (catalog, orders, keys through the API);
- ``tests/service_data.py``: the service tests' photos and dates;
- ``tests/browser.py``: the live web server and Playwright's Chromium;
- ``tests/photo_factory.py``, ``tests/train_data.py``: photos and training sets.
- ``tests/outbox_targets.py``: an HTTP receiver and an SMTP server (aiosmtpd) on 127.0.0.1.

Fixtures:

- ``tiny_model`` (session): path of the tiny test ONNX model (``benchmarks/tiny_model.py``);
- ``tiny_onnx`` (session): that model loaded (``OnnxModel``, one thread);
- ``pg_cluster`` / ``pg_url`` (session): a private PostgreSQL 15 server and its URL;
- ``s3_server`` (session): a private SeaweedFS S3 store on 127.0.0.1 (``tests/s3.py``);
- ``db_url``: a fresh database migrated to head, parametrized over sqlite and postgresql;
- ``empty_db_url``: the same, NOT migrated (for migration tests);
- ``shop``: the API demo shop on ``db_url``; ``sqlite_shop``: the same on SQLite only;
- ``order_db``: the ``Database`` on ``db_url`` with one customer, catalog item and order;
- ``svc``: the service over ``db_url`` with a small catalog and orders.

Live servers are started in module-scoped fixtures (``tests/browser.py``'s
``live_server``, ``tests/test_live_scenario.py``, ``tests/test_dock_e2e.py``) with the
helpers of ``tests/live.py``; tests that need Chromium call ``require_chromium()``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.pg import PgCluster, fresh_database_url
from tests.requires import require_postgres, require_seaweedfs

if TYPE_CHECKING:  # imported inside the fixtures: a module that breaks fails only its users
    from serving.services.service import ReturnLensService
    from serving.storage.db import Database
    from tests.s3 import S3Server
    from tests.shop import Shop
    from vision.model import OnnxModel

DATABASES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


# --------------------------------------------------------------------------- model
@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from benchmarks.tiny_model import build_test_model

    return build_test_model(tmp_path_factory.mktemp("model") / "tiny.onnx")


@pytest.fixture(scope="session")
def tiny_onnx(tiny_model: Path) -> OnnxModel:
    from vision.model import OnnxModel

    return OnnxModel(tiny_model, intra_op_threads=1)


# --------------------------------------------------------------------------- databases
@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    require_postgres()
    cluster = PgCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def pg_url(pg_cluster: PgCluster) -> str:
    return pg_cluster.url()


# --------------------------------------------------------------------------- object store
@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """SeaweedFS (``weed mini``) on free loopback ports; a test that stops it must start
    it again before it ends (``S3Server.stop``/``start``)."""
    require_seaweedfs()
    from tests.s3 import S3Server

    server = S3Server()
    try:
        server.start()
    except RuntimeError as exc:
        server.close()
        from tests.requires import missing

        missing(f"seaweedfs could not start: {exc}")
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(params=DATABASES)
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, NOT migrated database (for migration tests)."""
    return fresh_database_url(request.param, tmp_path, request, migrated=False)


@pytest.fixture(params=DATABASES)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database migrated to head, on SQLite and on PostgreSQL."""
    return fresh_database_url(request.param, tmp_path, request, migrated=True)


# An order's rows, stamped at this time (``order_db``).
ORDER_AT = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def order_db(db_url: str) -> Iterator[Database]:
    """The ``Database`` on ``db_url`` holding what a return refers to: customer ``c1``,
    catalog item ``s1`` (a mug, 10.0), and order ``o1`` of one ``s1``, delivered; every
    row stamped ``ORDER_AT``. For tests of storage under the services."""
    from serving.storage.db import Database
    from serving.storage.tables import CatalogItem, Customer, Order, OrderLine

    database = Database(db_url)
    with database.write() as s:
        s.add(Customer(id="c1", created_at=ORDER_AT))
        s.add(CatalogItem(sku="s1", category="mug", name="Mug", price=10.0, updated_at=ORDER_AT))
        s.flush()
        s.add(Order(id="o1", customer_id="c1", delivered_at=ORDER_AT, created_at=ORDER_AT))
        s.flush()
        s.add(OrderLine(order_id="o1", sku="s1", price=10.0, quantity=1))
    try:
        yield database
    finally:
        database.dispose()


# --------------------------------------------------------------------------- demo shop
@pytest.fixture
def shop(db_url: str, tmp_path: Path, tiny_model: Path) -> Iterator[Shop]:
    """The app (real lifespan) with the demo shop loaded through the API."""
    from fastapi.testclient import TestClient

    from serving.app import create_app
    from tests.shop import load_shop, make_settings

    settings = make_settings(db_url, tmp_path, tiny_model)
    with TestClient(create_app(settings)) as client:
        yield load_shop(client, settings)


@pytest.fixture
def sqlite_shop(tmp_path: Path, tiny_model: Path) -> Iterator[Shop]:
    """The same shop on SQLite only (for HTTP-only behaviour that storage cannot change)."""
    from fastapi.testclient import TestClient

    from serving.app import create_app
    from tests.shop import load_shop, make_settings

    settings = make_settings(f"sqlite:///{tmp_path / 'api.db'}", tmp_path, tiny_model)
    with TestClient(create_app(settings)) as client:
        yield load_shop(client, settings)


@pytest.fixture
def svc(db_url: str, tmp_path: Path, tiny_onnx: OnnxModel) -> Iterator[ReturnLensService]:
    """The service on ``db_url`` with two catalog items (mug-01, box-02) and orders o-1
    (a@example.com, both items), o-2 (no email) and o-old (delivered long ago); each line
    has quantity 20, so a test may open several returns of it (the per-line limit has its
    own test, tests/test_limits.py)."""
    from serving.services import admin
    from serving.services.inputs import CatalogRow, OrderRow
    from tests.service_data import DELIVERED, REFERENCE_SEED, clean, service_on

    service = service_on(db_url, tmp_path / "photos", tiny_onnx)
    catalog = [
        CatalogRow(sku="mug-01", category="mug", name="Mug", price=25.0),
        CatalogRow(sku="box-02", category="package", name="Box", price=40.0),
    ]
    # Catalog photos: the item where the tests' photos show it, but not their photo.
    references = {
        "mug-01": clean(seed=REFERENCE_SEED, corner="tl"),
        "box-02": clean(seed=REFERENCE_SEED + 1, corner="br"),
    }
    admin.upsert_catalog(service, catalog, photos=references)
    admin.upsert_orders(
        service,
        [
            OrderRow(
                order_id="o-1",
                customer_id="c-1",
                customer_email="a@example.com",
                sku="mug-01",
                price=25.0,
                delivered_at=DELIVERED,
                quantity=20,
            ),
            OrderRow(
                order_id="o-1",
                customer_id="c-1",
                sku="box-02",
                price=40.0,
                delivered_at=DELIVERED,
                quantity=20,
            ),
            OrderRow.model_validate(
                {
                    "order_id": "o-2",
                    "customer_id": "c-2",
                    "sku": "mug-01",
                    "price": 25.0,
                    "delivered_at": DELIVERED.isoformat(),
                    "quantity": 20,
                }
            ),
            OrderRow.model_validate(
                {
                    "order_id": "o-old",
                    "customer_id": "c-2",
                    "sku": "mug-01",
                    "price": 25.0,
                    "delivered_at": "2025-11-01T10:00:00Z",
                    "quantity": 20,
                }
            ),
        ],
    )
    yield service
    service.db.dispose()
