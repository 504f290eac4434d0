"""The length of every bounded string the service stores, declared once.

``tables.py`` sizes its ``VARCHAR`` columns with these numbers and the input field types
(``serving/services/fields.py``) bound the matching request fields with the same ones,
so anything the API accepts fits its column. Without that, SQLite (which ignores a
``VARCHAR`` length) stores a value that PostgreSQL refuses with
``StringDataRightTruncation``: the same request then succeeds on one database and is a
500 on the other. ``tests/test_hardening_inputs.py`` pairs every bounded input field
with its column and fails when the two numbers drift apart.

Changing a number here changes a column: it needs an Alembic migration
(``tests/test_migrations.py`` fails until there is one).
"""

from __future__ import annotations

from typing import Final

ID: Final = 40  # the service's own prefixed random ids ("ret_3f9c...", "ins_...")
SHOP_ID: Final = 64  # the shop's keys: order ids, customer ids, SKUs, categories
EMAIL: Final = 320  # 64 (local part) + 1 + 255 (domain)
ITEM_NAME: Final = 200
LABEL: Final = 40  # grade and damage names, tiers, channels
REASON: Final = 40  # a return reason code
ROLE: Final = 20  # a staff key's role
KIND: Final = 20  # short codes: a review's subject type and verdict
CLAIMED_RETURN_ID: Final = 200  # a return id as a parcel label says it (may be garbage)
IDEMPOTENCY_KEY: Final = 200
STATION_ID: Final = 100
KEY_NAME: Final = 100  # a staff API key's name (also the reviewer's name)
MODEL_VERSION: Final = 100
DIGEST: Final = 64  # sha256 hex
EVENT_TYPE: Final = 60  # an outbox event's type ("return.status_changed")
# Free text kept in TEXT columns: the database has no limit, the API has this one.
NOTE: Final = 2000
