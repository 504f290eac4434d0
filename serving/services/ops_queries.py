"""One query per dashboard chart: GROUP BY over the returns' search facts and the tables
they come from, filtered like the staff list (``serving.services.ops``).

Counting happens in the database, on both SQLite and PostgreSQL (no dialect-only SQL but
the day/month label, ``ops.period``). Two numbers are assembled in Python because they
live in JSON or need a mapping the database does not hold: damage labels (a decision's
``damage_probs``) and the fate of each channel. What "latest" means is the search facts'
rule (``serving/storage/search_facts.py``): the highest decision sequence, the newest
inspection.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from sqlalchemy import ScalarSelect, and_, case, func, select
from sqlalchemy.orm import aliased

from serving.services import ops, ops_review
from serving.services.ops import OpsFilter
from serving.services.service import ReturnLensService
from serving.storage.tables import (
    Decision,
    Inspection,
    OrderLine,
    Resolution,
    Return,
    ReturnFlag,
)


def volume(svc: ReturnLensService, f: OpsFilter) -> ops.VolumeOut:
    """Returns created per period, reason and category."""
    when = ops.period(svc.db.dialect, Return.created_at, f.bucket)
    stmt = (
        select(when, Return.reason, Return.category, func.count())
        .where(*ops.where(f))
        .group_by(when, Return.reason, Return.category)
        .order_by(when, Return.reason, Return.category)
    )
    with svc.db.read() as s:
        rows = [
            ops.VolumeRow(period=p, reason=r, category=c, count=n) for p, r, c, n in s.execute(stmt)
        ]
    return ops.VolumeOut(bucket=f.bucket, total=sum(r.count for r in rows), rows=rows)


def outcomes(svc: ReturnLensService, f: OpsFilter) -> ops.OutcomesOut:
    """The latest decision's outcome per return; a keep-it resolution makes it "kept"."""
    kept = case((Resolution.id.is_not(None), 1), else_=0)
    keep_it = and_(
        Resolution.return_id == Return.id,
        Resolution.timing == "keep_it",
        Resolution.status.in_(("planned", "issued")),
    )
    stmt = (
        select(Return.latest_outcome, kept, func.count())
        .outerjoin(Resolution, keep_it)
        .where(*ops.where(f))
        .group_by(Return.latest_outcome, kept)
    )
    names = {"approved": "auto_approved", "needs_review": "review", None: "undecided"}
    counts = dict.fromkeys(ops.OUTCOME_MIX, 0)
    with svc.db.read() as s:
        for outcome, is_kept, n in s.execute(stmt):
            name = "kept" if is_kept else names.get(outcome, outcome)
            counts[name] = counts.get(name, 0) + n
    return ops.OutcomesOut(total=sum(counts.values()), counts=counts)


def trust(svc: ReturnLensService, f: OpsFilter) -> ops.TrustOut:
    """Per period: decided returns, and how many the engine abstained on (unfamiliar)."""
    when = ops.period(svc.db.dialect, Return.created_at, f.bucket)
    decided = select(when, func.count()).where(*ops.where(f), Return.latest_outcome.is_not(None))
    flagged = (
        select(ReturnFlag.return_id, ReturnFlag.code)
        .where(ReturnFlag.code.in_(ops.ABSTAIN_CODES))
        .subquery()
    )
    unfamiliar = func.sum(case((flagged.c.code == ops.UNFAMILIAR_CODE, 1), else_=0))
    abstained = (
        select(when, func.count(func.distinct(flagged.c.return_id)), unfamiliar)
        .join(flagged, flagged.c.return_id == Return.id)
        .where(*ops.where(f))
    )
    with svc.db.read() as s:
        per = {p: [n, 0, 0] for p, n in s.execute(decided.group_by(when))}
        for p, a, u in s.execute(abstained.group_by(when)):
            per.setdefault(p, [0, 0, 0])[1:] = [a, int(u or 0)]
    rows = [
        ops.TrustRow(
            period=p,
            decided=d,
            abstained=a,
            unfamiliar=u,
            abstain_rate=ops.rate(a, d),
            unfamiliar_rate=ops.rate(u, d),
        )
        for p, (d, a, u) in sorted(per.items())
    ]
    d, a, u = (sum(getattr(r, k) for r in rows) for k in ("decided", "abstained", "unfamiliar"))
    return ops.TrustOut(
        bucket=f.bucket,
        decided=d,
        abstained=a,
        unfamiliar=u,
        abstain_rate=ops.rate(a, d),
        unfamiliar_rate=ops.rate(u, d),
        rows=rows,
    )


def grades(svc: ReturnLensService, f: OpsFilter) -> ops.GradesOut:
    """Returns by category, SKU and the latest decision's grade (ungraded left out)."""
    keys = (Return.category, Return.sku, Return.latest_grade)
    stmt = (
        select(*keys, func.count())
        .where(*ops.where(f), Return.latest_grade.is_not(None))
        .group_by(*keys)
        .order_by(*keys)
    )
    with svc.db.read() as s:
        rows = [
            ops.GradeRow(category=c, sku=k, grade=str(g), count=n) for c, k, g, n in s.execute(stmt)
        ]
    return ops.GradesOut(total=sum(r.count for r in rows), rows=rows)


def top_skus(svc: ReturnLensService, f: OpsFilter) -> ops.TopSkusOut:
    """SKUs by return rate (returns / units sold) and by damage label on latest decisions."""
    sold = (
        select(OrderLine.sku, func.sum(OrderLine.quantity).label("units"))
        .group_by(OrderLine.sku)
        .subquery()
    )
    per_sku = (
        select(Return.sku, func.max(Return.category), func.count(), func.max(sold.c.units))
        .outerjoin(sold, sold.c.sku == Return.sku)
        .where(*ops.where(f))
        .group_by(Return.sku)
    )
    d = aliased(Decision)  # the latest decision: the return's highest sequence
    highest = select(func.max(Decision.sequence)).where(Decision.return_id == Return.id)
    damages = (
        select(Return.sku, d.damage_probs)
        .join(d, and_(d.return_id == Return.id, d.sequence == highest.scalar_subquery()))
        .where(*ops.where(f))
    )
    counts: Counter[tuple[str, str]] = Counter()
    with svc.db.read() as s:
        rates = [
            ops.SkuRate(
                sku=k, category=c, returns=n, sold=int(u or 0), rate=ops.rate(n, int(u or 0))
            )
            for k, c, n, u in s.execute(per_sku)
        ]
        for sku, probs in s.execute(damages):
            for label, p in (probs or {}).items():
                if p >= ops.DAMAGE_PRESENT:
                    counts[(label, sku)] += 1
    rates.sort(key=lambda r: (-(r.rate or 0.0), -r.returns, r.sku))
    by_label: dict[str, list[ops.SkuDamage]] = defaultdict(list)
    for (label, sku), n in sorted(counts.items(), key=lambda kv: (kv[0][0], -kv[1], kv[0][1])):
        by_label[label].append(ops.SkuDamage(damage=label, sku=sku, count=n))
    by_damage = [row for label in sorted(by_label) for row in by_label[label][: f.top]]
    return ops.TopSkusOut(by_rate=rates[: f.top], by_damage=by_damage)


def _latest_inspection_id() -> ScalarSelect[str]:
    """The id of the return's newest inspection (the search facts' ``latest_channel`` rule)."""
    newest = (
        select(Inspection.id)
        .where(Inspection.return_id == Return.id)
        .order_by(Inspection.created_at.desc(), Inspection.id.desc())
        .limit(1)
    )
    return newest.correlate(Return).scalar_subquery()


def recovery(svc: ReturnLensService, f: OpsFilter) -> ops.RecoveryOut:
    """Per dock channel: paid, recovery expected at acceptance, recovery at the dock."""
    money = (
        func.count(),
        func.coalesce(func.sum(Return.price), 0),
        func.coalesce(func.sum(Resolution.expected_recovery), 0),
        func.coalesce(func.sum(Inspection.expected_recovery), 0),
    )
    stmt = (
        select(Inspection.channel, *money)
        .join(Inspection, Inspection.id == _latest_inspection_id())
        .outerjoin(Resolution, Resolution.return_id == Return.id)
        .where(*ops.where(f), Inspection.channel.is_not(None))
        .group_by(Inspection.channel)
        .order_by(Inspection.channel)
    )
    with svc.db.read() as s:
        channels = [
            ops.ChannelRecovery(
                channel=str(c),
                items=n,
                paid=round(float(p or 0), 2),
                expected=round(float(e or 0), 2),
                realised=round(float(r or 0), 2),
            )
            for c, n, p, e, r in s.execute(stmt)
        ]
    salvage = [c for c in channels if c.channel in ops.SALVAGE_CHANNELS]
    return ops.RecoveryOut(
        channels=channels,
        salvage_items=sum(c.items for c in salvage),
        salvage_loss=round(sum(c.paid - c.realised for c in salvage), 2),
    )


def sustainability(svc: ReturnLensService, f: OpsFilter) -> ops.SustainabilityOut:
    """What happens to the routed items: restocked, refurbished, donated, recycled..."""
    stmt = (
        select(Return.latest_channel, func.count())
        .where(*ops.where(f), Return.latest_channel.is_not(None))
        .group_by(Return.latest_channel)
    )
    items = dict.fromkeys(ops.FATES, 0)
    with svc.db.read() as s:
        for channel, n in s.execute(stmt):
            items[ops.FATE_OF_CHANNEL.get(str(channel), "other")] += n
    routed = sum(items.values())
    fates = [ops.FateShare(fate=k, items=n, share=ops.rate(n, routed)) for k, n in items.items()]
    return ops.SustainabilityOut(routed=routed, fates=fates)


def reviewers(svc: ReturnLensService, f: OpsFilter) -> ops.ReviewersOut:
    """Verdicts per reviewer, the waiting queue by age, model agreement per grade."""
    with svc.db.read() as s:
        return ops.ReviewersOut(
            workload=ops_review.workload(s, f),
            queue_age=ops_review.queue_age(s, f, svc.now()),
            agreement=ops_review.agreement(s, f),
        )


def fraud(svc: ReturnLensService, f: OpsFilter) -> ops.FraudOut:
    """Fraud flags on latest decisions per period; customers returning more than once."""
    when = ops.period(svc.db.dialect, Return.created_at, f.bucket)
    flags = (
        select(when, ReturnFlag.code, func.count())
        .join(ReturnFlag, ReturnFlag.return_id == Return.id)
        .where(*ops.where(f), ReturnFlag.code.in_(ops.FRAUD_CODES))
        .group_by(when, ReturnFlag.code)
        .order_by(when, ReturnFlag.code)
    )
    n = func.count()
    returners = (
        select(Return.customer_id, n)
        .where(*ops.where(f))
        .group_by(Return.customer_id)
        .having(n >= 2)
        .order_by(n.desc(), Return.customer_id)
        .limit(f.top)
    )
    with svc.db.read() as s:
        counts = [ops.FlagCount(period=p, code=c, count=k) for p, c, k in s.execute(flags)]
        repeat = [ops.Returner(customer_id=c, returns=k) for c, k in s.execute(returners)]
    return ops.FraudOut(bucket=f.bucket, flags=counts, repeat_returners=repeat)
