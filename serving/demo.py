"""Demo data: a generated catalog, customers with delivered orders, and staff API keys.

``returnlens serve --seed-demo`` calls :func:`seed_demo` before starting the workers.
The catalog comes from the synthetic generator (``vision.synth``, torch-free): a few
SKUs per category, each with a rendered reference photo, so the wrong-item check has
something to compare with. The orders cover the interesting cases: recent deliveries,
one delivered outside the return window, a high-value phone, a repeat returner, a
damaged item returned on a change of mind, a dark and a blurred photo.

Each printed order carries a promise: open a return with this reason, upload this
bundled sample (``datasets/samples/``, rendered from this very catalog by
``serving.demo_samples``), and the service answers with this outcome.
``tests/test_demo_promises.py`` runs every promise against a live service, so a note
that stops being true fails a test instead of misleading the person trying the demo.
Promises are printed only for the catalog the samples were rendered from (the default
seed and SKUs per category); another catalog gets the plain notes.

Seeding is idempotent. Catalog and orders are upserts; the staff keys and the repeat
returner's earlier returns are created once and remembered in ``DATA_DIR/demo.json``
(mode 0600: readable only by its owner), so a restart keeps the same keys instead of
minting new ones. The keys are written there and nowhere else: the summary printed at
start-up (and logged by a worker that seeds) names the file, never a key.
"""

from __future__ import annotations

import io
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from serving.demo_orders import DEMO_ORDERS, DEMO_PRICES, HISTORY_ORDERS, Promise
from serving.demo_samples import CATALOG_SEED, SKUS_PER_CATEGORY
from serving.domain_errors import Conflict
from serving.services import admin, shopper
from serving.services.fields import Role
from serving.services.inputs import ApiKeyRequest, CatalogRow, CreateReturnRequest, OrderRow
from serving.services.service import ReturnLensService
from vision.fsio import atomic_write_text

STATE_FILE = "demo.json"
STATE_VERSION = 1
ROLES: tuple[Role, ...] = ("admin", "dock", "reviewer")


@dataclass(frozen=True)
class SeededOrder:
    order_id: str
    email: str
    sku: str
    name: str
    price: float
    delivered_at: datetime
    note: str
    promise: Promise | None = None  # None: no bundled sample fits this catalog


@dataclass(frozen=True)
class DemoResult:
    keys: dict[str, str]  # role -> plaintext key
    orders: tuple[SeededOrder, ...]
    skus: int
    new_keys: bool
    state_file: Path
    history_returns: tuple[str, ...] = field(default=())

    def lines(self) -> list[str]:
        """Human-readable summary printed by ``returnlens serve --seed-demo``."""
        out = [
            f"demo data: {self.skus} catalog SKUs, {len(self.orders)} delivered orders",
            # Never the keys themselves: these lines go to the server's output and logs.
            f"  staff keys ({', '.join(ROLES)}): in {self.state_file} (readable only by its owner)",
        ]
        out.append("  orders (order id, customer email, SKU):")
        for o in self.orders:
            if o.order_id in HISTORY_ORDERS:
                continue
            note = f"{o.note}: {o.promise.text()}" if o.promise else o.note
            out.append(f"    {o.order_id}  {o.email:<18} {o.sku:<11} {o.price:>8.2f}  {note}")
        return out

    def promises(self) -> list[tuple[SeededOrder, Promise]]:
        """Every printed promise with its order (what ``lines()`` tells people to try)."""
        return [
            (o, o.promise)
            for o in self.orders
            if o.promise is not None and o.order_id not in HISTORY_ORDERS
        ]


def _jpeg(rgb: Any) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def demo_catalog(
    seed: int, skus_per_category: int = 2, reference_size: int = 384
) -> tuple[list[CatalogRow], dict[str, bytes]]:
    """Catalog rows, and a generated reference photo (JPEG bytes) for each SKU."""
    from vision.synth import catalog_skus, render_reference

    skus = catalog_skus(seed, skus_per_category)
    rows = [
        CatalogRow(
            sku=s.sku, category=s.category, name=s.name, price=DEMO_PRICES.get(s.sku, s.price)
        )
        for s in skus
    ]
    return rows, {s.sku: _jpeg(render_reference(s, reference_size)) for s in skus}


def _read_state(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and data.get("version") == STATE_VERSION else {}


def _write_state(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(state, indent=2), mode=0o600)  # it holds API keys


def _keys(service: ReturnLensService, state: dict[str, Any]) -> tuple[dict[str, str], bool]:
    """Reuse remembered keys while they still authenticate; otherwise mint new ones."""
    known = state.get("keys", {})
    if isinstance(known, dict) and all(
        isinstance(known.get(r), str) and admin.authenticate_key(service, known[r]) is not None
        for r in ROLES
    ):
        return {r: str(known[r]) for r in ROLES}, False
    suffix = secrets.token_hex(3)
    return {
        r: admin.create_api_key(service, ApiKeyRequest(name=f"demo-{r}-{suffix}", role=r))
        for r in ROLES
    }, True


def seed_demo(
    service: ReturnLensService,
    data_dir: Path,
    *,
    seed: int = CATALOG_SEED,
    skus_per_category: int = SKUS_PER_CATEGORY,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> DemoResult:
    """Load the demo catalog, customers, orders and keys (idempotent)."""
    catalog, photos = demo_catalog(seed, skus_per_category)
    admin.upsert_catalog(service, catalog, photos=photos)
    by_key = {(c.category, int(c.sku.rsplit("-", 1)[1])): c for c in catalog}
    today = now().replace(microsecond=0)
    samples_fit = (seed, skus_per_category) == (CATALOG_SEED, SKUS_PER_CATEGORY)
    seeded: list[SeededOrder] = []
    for o in DEMO_ORDERS:
        item = by_key.get((o.category, o.sku_index)) or by_key[(o.category, 1)]
        seeded.append(
            SeededOrder(
                o.order_id,
                o.email,
                item.sku,
                item.name,
                item.price,
                today - timedelta(days=o.days_ago),
                o.note,
                o.promise if samples_fit else None,
            )
        )
    admin.upsert_orders(
        service,
        [
            OrderRow(
                order_id=s.order_id,
                customer_id=o.customer_id,
                customer_email=s.email,
                sku=s.sku,
                price=s.price,
                delivered_at=s.delivered_at,
            )
            for s, o in zip(seeded, DEMO_ORDERS, strict=True)
        ],
    )
    state_path = data_dir / STATE_FILE
    state = _read_state(state_path)
    keys, new_keys = _keys(service, state)
    history = list(state.get("history_returns", [])) if not new_keys else []
    if not history:
        for s in seeded:
            if s.order_id not in HISTORY_ORDERS:
                continue
            try:
                created = shopper.create_return(
                    service,
                    CreateReturnRequest(
                        order_id=s.order_id,
                        sku=s.sku,
                        reason="changed_mind",
                        note="demo history",
                        email=s.email,
                    ),
                )
                history.append(created.return_id)
            except Conflict:
                pass  # already there from an earlier seeding whose state file was lost
    _write_state(state_path, {"version": STATE_VERSION, "keys": keys, "history_returns": history})
    return DemoResult(
        keys=keys,
        orders=tuple(seeded),
        skus=len(catalog),
        new_keys=new_keys,
        state_file=state_path,
        history_returns=tuple(history),
    )
