"""The operations dashboard's JSON endpoints (issue 18, point 2), on SQLite and PostgreSQL.

The data set is ``tests/ops_data.py``; every expected number below is computed from its
``SEEDS`` and ``VERDICTS`` (or, where a rule needs saying, written out next to the rule),
never read back from the code under test.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.ops_data import (
    EXTRA_SOLD,
    HELD_INSPECTION_H,
    INSPECTION_GRADE,
    QUANTITY,
    SEEDS,
    VERDICTS,
    Seed,
    day_of,
    seed,
)
from tests.shop import Shop

URL = "/v1/ops"
CHARTS = (
    "volume",
    "outcomes",
    "trust",
    "grades",
    "top-skus",
    "recovery",
    "sustainability",
    "reviewers",
    "fraud",
)


@pytest.fixture
def ops_shop(shop: Shop) -> Shop:
    seed(shop.settings.database_url, datetime.now(UTC))
    return shop


def _get(shop: Shop, chart: str, role: str = "reviewer", **params: Any) -> Any:
    r = shop.client.get(f"{URL}/{chart}", params=params, headers=shop.headers(role))
    assert r.status_code == 200, r.text
    return r.json()


def _day(r: Seed) -> str:
    return day_of(r).isoformat()


def test_volume_by_period_reason_and_category(ops_shop: Shop) -> None:
    expected = Counter((_day(r), r.reason, r.category) for r in SEEDS)
    body = _get(ops_shop, "volume")
    got = {(x["period"], x["reason"], x["category"]): x["count"] for x in body["rows"]}
    assert got == dict(expected)
    assert body["total"] == len(SEEDS) == 10
    monthly = _get(ops_shop, "volume", bucket="month")
    assert {x["period"] for x in monthly["rows"]} == {"2026-03"}
    assert sum(x["count"] for x in monthly["rows"]) == len(SEEDS)


def test_outcome_mix_counts_kept_only_for_a_live_keep_it(ops_shop: Shop) -> None:
    # r05 is approved with an issued keep-it resolution: kept. r04's keep-it was
    # cancelled: it stays rejected. r09 has no decision.
    body = _get(ops_shop, "outcomes")
    assert body["counts"] == {
        "auto_approved": 3,
        "retake": 1,
        "review": 3,
        "rejected": 1,
        "kept": 1,
        "undecided": 1,
    }
    assert body["total"] == len(SEEDS)


def test_trust_rates_per_day(ops_shop: Shop) -> None:
    per: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for r in SEEDS:
        if r.outcome is None:
            continue
        row = per[_day(r)]
        row[0] += 1
        row[1] += int(bool({"unfamiliar_photo", "model_cannot_tell"} & set(r.flags)))
        row[2] += int("unfamiliar_photo" in r.flags)
    body = _get(ops_shop, "trust")
    got = {x["period"]: [x["decided"], x["abstained"], x["unfamiliar"]] for x in body["rows"]}
    assert got == dict(per) == {"2026-03-01": [4, 1, 1], "2026-03-02": [5, 1, 0]}
    assert body["rows"][0]["abstain_rate"] == pytest.approx(1 / 4)
    assert (body["decided"], body["abstained"], body["unfamiliar"]) == (9, 2, 1)
    assert body["abstain_rate"] == pytest.approx(2 / 9)
    assert body["unfamiliar_rate"] == pytest.approx(1 / 9)


def test_grade_mix_by_category_and_sku_uses_the_latest_decision(ops_shop: Shop) -> None:
    expected = Counter((r.category, r.sku, r.grade) for r in SEEDS if r.grade is not None)
    body = _get(ops_shop, "grades")
    got = {(x["category"], x["sku"], x["grade"]): x["count"] for x in body["rows"]}
    assert got == dict(expected)
    assert ("kitchen", "k-1", "E_damaged") not in got  # r02's older decision
    only = _get(ops_shop, "grades", sku="t-1")
    assert {x["sku"] for x in only["rows"]} == {"t-1"}
    assert only["total"] == sum(1 for r in SEEDS if r.sku == "t-1" and r.grade)


def test_top_skus_by_return_rate_and_damage(ops_shop: Shop) -> None:
    returns = Counter(r.sku for r in SEEDS)
    sold = {k: QUANTITY * n + EXTRA_SOLD.get(k, 0) for k, n in returns.items()}
    body = _get(ops_shop, "top-skus")
    rates = {x["sku"]: (x["returns"], x["sold"], x["rate"]) for x in body["by_rate"]}
    assert rates == {k: (returns[k], sold[k], pytest.approx(returns[k] / sold[k])) for k in sold}
    # Highest rate first; equal rates: more returns first, then the SKU.
    assert [x["sku"] for x in body["by_rate"]] == ["k-2", "t-1", "k-1"]
    damage = Counter((label, r.sku) for r in SEEDS for label, p in r.damage.items() if p >= 0.5)
    got = {(x["damage"], x["sku"]): x["count"] for x in body["by_damage"]}
    assert got == dict(damage)
    assert ("crack", "k-1") not in got  # r02's older decision
    assert ("stain", "t-1") in got  # exactly on the threshold
    top1 = _get(ops_shop, "top-skus", top=1)
    assert [x["sku"] for x in top1["by_rate"]] == ["k-2"]
    assert len(top1["by_damage"]) == len({label for label, _ in damage})


def test_recovery_expected_vs_realised_by_channel(ops_shop: Shop) -> None:
    routed = [r for r in SEEDS if r.channel is not None]
    body = _get(ops_shop, "recovery")
    got = {
        x["channel"]: (x["items"], x["paid"], x["expected"], x["realised"])
        for x in body["channels"]
    }
    assert got == {
        r.channel: (1, r.price, r.expected or 0.0, r.realised) for r in routed
    }  # one item per channel; r01's older recycle inspection does not count
    salvage = [r for r in routed if r.channel in ("liquidation", "recycle")]
    assert body["salvage_items"] == len(salvage) == 2
    assert body["salvage_loss"] == pytest.approx(sum(r.price - (r.realised or 0) for r in salvage))
    assert body["salvage_loss"] == pytest.approx(54.5)


def test_sustainability_shares(ops_shop: Shop) -> None:
    body = _get(ops_shop, "sustainability")
    fates = {x["fate"]: (x["items"], x["share"]) for x in body["fates"]}
    assert body["routed"] == 5
    assert fates["restocked"] == (2, pytest.approx(0.4))  # restock r01 + open_box r10
    assert fates["refurbished"] == (1, pytest.approx(0.2))
    assert fates["recycled"] == (1, pytest.approx(0.2))
    assert fates["liquidated"] == (1, pytest.approx(0.2))
    assert fates["donated"] == (0, 0.0)


def test_reviewers_workload_queue_and_agreement(ops_shop: Shop) -> None:
    body = _get(ops_shop, "reviewers")
    load: dict[str, Counter[str]] = defaultdict(Counter)
    for v in VERDICTS:
        load[v.reviewer][v.verdict] += 1
    got = {
        x["reviewer"]: (x["approve"], x["reject"], x["correct"], x["total"])
        for x in body["workload"]
    }
    assert got == {
        who: (c["approve"], c["reject"], c["correct"], c.total()) for who, c in load.items()
    }
    assert [x["reviewer"] for x in body["workload"]] == ["bob", "alice"]  # busiest first
    waiting = {x["band"]: (x["returns"], x["inspections"]) for x in body["queue_age"]}
    # r03 waits 0.5 h, r07 2 h, r08 5 days; r07's inspection is held 10 h.
    assert [r.waiting_h for r in SEEDS if r.waiting_h] == [0.5, 2.0, 120.0]
    assert HELD_INSPECTION_H == {"ret_ops07": 10.0}
    assert waiting == {
        "under 1 h": (1, 0),
        "1-4 h": (1, 0),
        "4-24 h": (0, 1),
        "1-3 days": (0, 0),
        "over 3 days": (1, 0),
    }
    model = {r.id: r.grade for r in SEEDS}
    agree: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for v in VERDICTS:
        if v.verdict == "reject":
            continue
        grade = INSPECTION_GRADE[v.return_id] if v.subject == "inspection" else model[v.return_id]
        assert grade is not None
        agree[grade][0] += 1
        agree[grade][1] += int(v.verdict == "approve" or v.grade in (None, grade))
    got_agree = {x["grade"]: [x["n"], x["agree"]] for x in body["agreement"]}
    assert got_agree == dict(agree) == {"C_good": [2, 2], "E_damaged": [2, 1]}


def test_fraud_flags_over_time_and_repeat_returners(ops_shop: Shop) -> None:
    fraud = ("repeat_returner", "reused_photo", "wrong_item", "reason_condition_mismatch")
    expected = Counter((_day(r), code) for r in SEEDS for code in r.flags if code in fraud)
    body = _get(ops_shop, "fraud")
    got = {(x["period"], x["code"]): x["count"] for x in body["flags"]}
    assert got == dict(expected)
    per_customer = Counter(r.customer for r in SEEDS)
    assert [(x["customer_id"], x["returns"]) for x in body["repeat_returners"]] == sorted(
        ((c, n) for c, n in per_customer.items() if n >= 2), key=lambda cn: (-cn[1], cn[0])
    )


def test_filters_select_the_same_returns_as_the_staff_list(ops_shop: Shop) -> None:
    toys = [r for r in SEEDS if r.category == "toys"]
    assert _get(ops_shop, "volume", category="toys")["total"] == len(toys) == 3
    day2 = [r for r in SEEDS if _day(r) == "2026-03-02"]
    assert _get(ops_shop, "outcomes", created_from="2026-03-02")["total"] == len(day2)
    assert _get(ops_shop, "outcomes", created_to="2026-03-01")["total"] == len(SEEDS) - len(day2)
    recycle = _get(ops_shop, "recovery", channel="recycle")
    assert [x["channel"] for x in recycle["channels"]] == ["recycle"]
    listed = ops_shop.client.get(
        "/v1/staff/returns", params={"category": "toys"}, headers=ops_shop.headers("reviewer")
    ).json()["items"]
    assert len(listed) == len(toys)
    alice = _get(ops_shop, "reviewers", reason="defective")  # r07 (alice), r02 (bob)
    assert {x["reviewer"]: x["total"] for x in alice["workload"]} == {"alice": 1, "bob": 1}


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"colour": "red"}, "unknown_field"),
        ({"created_from": "2026-03-05", "created_to": "2026-03-01"}, "invalid_range"),
        ({"created_from": "2026-13-45"}, "invalid_date"),
        ({"bucket": "fortnight"}, "invalid_field"),
        ({"top": "0"}, "invalid_field"),
    ],
)
def test_bad_filters_answer_422_with_a_code(
    sqlite_shop: Shop, params: dict[str, str], code: str
) -> None:
    for chart in CHARTS:
        r = sqlite_shop.client.get(
            f"{URL}/{chart}", params=params, headers=sqlite_shop.headers("reviewer")
        )
        assert r.status_code == 422, (chart, r.text)
        body = r.json()
        assert body["code"] == code, body
        assert isinstance(body["message"], str) and body["message"]


def test_only_reviewers_and_admins_read_the_dashboard(sqlite_shop: Shop) -> None:
    for chart in CHARTS:
        url = f"{URL}/{chart}"
        assert sqlite_shop.client.get(url).status_code == 401
        bad = {"Authorization": "Bearer not-a-key"}
        assert sqlite_shop.client.get(url, headers=bad).status_code == 401
        dock = sqlite_shop.client.get(url, headers=sqlite_shop.headers("dock"))
        assert dock.status_code == 403 and dock.json()["code"] == "forbidden"
        for role in ("reviewer", "admin"):
            assert sqlite_shop.client.get(url, headers=sqlite_shop.headers(role)).status_code == 200


def test_the_page_is_served_under_the_strict_csp(sqlite_shop: Shop) -> None:
    page = sqlite_shop.client.get("/ops")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "/static/vendor/chart.js-4.4.9.umd.min.js" in page.text
    lib = sqlite_shop.client.get("/static/vendor/chart.js-4.4.9.umd.min.js")
    assert lib.status_code == 200
    assert lib.headers["content-type"].startswith("text/javascript")
    assert "Chart.js v4.4.9" in lib.text[:200]
