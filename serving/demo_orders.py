"""The demo's customers and orders, and what each order promises to someone trying it.

Kept apart from the seeding code (``serving/demo.py``) because this is data a person
reads and edits: each order says what it demonstrates, and its ``Promise`` says which
bundled sample to upload for which return reason and what the service answers. The
samples are rendered from the demo catalog by ``serving.demo_samples``;
``tests/test_demo_promises.py`` holds the service to every promise.
"""

from __future__ import annotations

from dataclasses import dataclass

from serving.demo_samples import SAMPLES_DIR


@dataclass(frozen=True)
class Promise:
    """What trying an order gives: open a return for ``reason``, upload ``sample``, get
    ``outcome`` (a shopper decision outcome). With ``sample`` None the return cannot be
    opened at all: ``outcome`` is then the refusal's error code."""

    reason: str
    sample: str | None
    outcome: str

    @property
    def refused(self) -> bool:
        return self.sample is None

    def text(self) -> str:
        if self.sample is None:
            return f"opening a return is refused ({self.outcome})"
        return f"return ({self.reason}) with {SAMPLES_DIR / self.sample} -> {self.outcome}"


@dataclass(frozen=True)
class DemoOrder:
    order_id: str
    customer_id: str
    email: str
    category: str  # the SKU is the first (or given) SKU of this category
    days_ago: int
    note: str
    sku_index: int = 1
    promise: Promise | None = None


# (order id, customer, email, category, delivered days ago, what it demonstrates, promise)
DEMO_ORDERS: tuple[DemoOrder, ...] = (
    DemoOrder(
        "ORD-1001",
        "C-ada",
        "ada@example.com",
        "mug",
        3,
        "recent, clean photo",
        promise=Promise("changed_mind", "mug-01-A_new.jpg", "approved"),
    ),
    DemoOrder(
        "ORD-1002",
        "C-ada",
        "ada@example.com",
        "shoe",
        5,
        "recent, clean photo",
        promise=Promise("does_not_fit", "shoe-01-B_like_new.jpg", "approved"),
    ),
    DemoOrder(
        "ORD-1003",
        "C-ben",
        "ben@example.com",
        "phone",
        2,
        "high value; a phone asks for three views (guided capture), so one photo gets a "
        "retake naming the missing ones",
        promise=Promise("changed_mind", "phone-01-B_like_new.jpg", "retake"),
    ),
    DemoOrder(
        "ORD-1004",
        "C-ben",
        "ben@example.com",
        "garment",
        75,
        "delivered 75 days ago: outside the return window",
        promise=Promise("changed_mind", None, "outside_return_window"),
    ),
    DemoOrder(
        "ORD-1005",
        "C-cleo",
        "cleo@example.com",
        "book",
        4,
        "repeat returner (3 earlier returns)",
        promise=Promise("changed_mind", "book-01-C_good.jpg", "needs_review"),
    ),
    DemoOrder("ORD-1006", "C-cleo", "cleo@example.com", "mug", 25, "earlier return", 2),
    DemoOrder("ORD-1007", "C-cleo", "cleo@example.com", "shoe", 18, "earlier return", 2),
    DemoOrder("ORD-1008", "C-cleo", "cleo@example.com", "garment", 10, "earlier return", 2),
    DemoOrder(
        "ORD-1009",
        "C-dan",
        "dan@example.com",
        "box",
        6,
        "recent, photo too dark",
        promise=Promise("changed_mind", "box-01-D_fair-dark.jpg", "retake"),
    ),
    DemoOrder(
        "ORD-1010",
        "C-eve",
        "eve@example.com",
        "garment",
        8,
        "recent, blurred photo",
        promise=Promise("does_not_fit", "garment-01-C_good-blur.jpg", "retake"),
    ),
    DemoOrder(
        "ORD-1011",
        "C-eve",
        "eve@example.com",
        "mug",
        6,
        "broken mug returned on a change of mind",
        promise=Promise("changed_mind", "mug-01-E_damaged.jpg", "needs_review"),
    ),
)
HISTORY_ORDERS = ("ORD-1006", "ORD-1007", "ORD-1008")
# The generator prices phones at 199-999 and neither of the default catalog's two phones
# reaches the phone category's high-value line (750 in serving/policy/default.yaml), so
# the demo sells its first phone at a flagship price to show the high-value review.
DEMO_PRICES: dict[str, float] = {"phone-01": 899.0}
