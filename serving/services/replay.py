"""Replay a stored shopper decision, and re-decide history under another policy.

``replay_decision`` re-runs one decision from what was stored with it: its photos (the
photo store's copies), the model version that graded them (the serving model when the
versions match, else the registry's copy of that version), the policy text stored under
its version (``serving.services.policies``) and the non-model facts the policy read
(``Decision.inputs``). The photos go through the serving path again (decode, quality
gate, ONNX model, worst-view aggregation), the catalog similarity is recomputed from the
new embedding against the SKU's current reference photo (a reference replaced since
shows as a similarity difference), and the engine decides again. The result compares the
stored and the replayed decision field by field. Scores are compared within a tolerance:
the store keeps a JPEG re-encoding of the graded pixels, not the upload, so a replayed
score drifts by a little; the outcome, grade, flags and gate verdicts must match exactly.

``simulate_policy`` re-decides every decision of a period from its *stored* scores and
facts (no inference: the decision row keeps the aggregated probabilities, its photos'
rows keep each photo's familiarity and gate checks) under a new policy, and reports
which outcomes would change.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from serving.domain_errors import Invalid, NotFound
from serving.policy import PhotoQuality, Policy, QualityIssue, ReturnContext, Scores, decide_return
from serving.policy.types import (
    CopyMatch,
    CustomerHistory,
    PolicyInputError,
    ReusedPhoto,
    ShopperDecision,
)
from serving.services import decide, policies
from serving.services.facts import reference_embedding
from serving.services.scores import probs_dict
from serving.services.service import ReturnLensService
from serving.storage import repo
from serving.storage.db import Database
from serving.storage.photostore import PhotoStorage
from serving.storage.tables import Decision, Grading, Photo
from vision.aggregate import cosine_similarity
from vision.errors import ModelError
from vision.pipeline import Grader
from vision.types import ItemScores

# Largest drift of a probability, confidence or similarity still called reproduced. The
# stored photo is a JPEG (quality 92) of the pixels graded at upload time.
SCORE_TOLERANCE = 0.02


@dataclass(frozen=True)
class DecisionView:
    """What a decision says, stored or replayed, in comparable form."""

    outcome: str
    grade: str | None
    confidence: float | None
    flags: tuple[str, ...]  # "code:effect", sorted
    grade_probs: Mapping[str, float]
    damage_probs: Mapping[str, float]
    similarity: float | None
    photos_passed: Mapping[str, bool]  # photo id -> passed the quality gate
    policy_version: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "grade": self.grade,
            "confidence": self.confidence,
            "flags": list(self.flags),
            "grade_probs": dict(self.grade_probs),
            "damage_probs": dict(self.damage_probs),
            "similarity": self.similarity,
            "photos_passed": dict(self.photos_passed),
            "policy_version": self.policy_version,
        }


@dataclass(frozen=True)
class Difference:
    field: str  # "outcome", "grade_probs.B_good", ...
    original: Any
    replayed: Any

    def line(self) -> str:
        return f"{self.field}: {self.original!r} -> {self.replayed!r}"


@dataclass(frozen=True)
class ReplayResult:
    decision_id: str
    return_id: str
    model_version: str
    original: DecisionView
    replayed: DecisionView
    differences: tuple[Difference, ...]
    reproduced: bool
    tolerance: float
    note: str = ""  # e.g. the similarity could not be recomputed

    def as_dict(self) -> dict[str, Any]:
        return {
            "decision_id": self.decision_id,
            "return_id": self.return_id,
            "model_version": self.model_version,
            "reproduced": self.reproduced,
            "tolerance": self.tolerance,
            "differences": [
                {"field": d.field, "original": d.original, "replayed": d.replayed}
                for d in self.differences
            ],
            "original": self.original.as_dict(),
            "replayed": self.replayed.as_dict(),
            "note": self.note,
        }


# ------------------------------------------------------------------------------ replay
def replay_decision(
    svc: ReturnLensService,
    decision_id: str,
    *,
    policy: Policy | None = None,
    models_dir: Path | None = None,
    tolerance: float = SCORE_TOLERANCE,
) -> ReplayResult:
    """Re-run the stored decision ``decision_id`` (see the module docstring).

    ``policy``: decide with this policy instead of the stored one (a what-if for one
    decision); ``models_dir``: the registry to find an older model version in.
    """
    with svc.db.read() as s:
        row = s.get(Decision, decision_id)
        if row is None:
            raise NotFound(f"There is no decision {decision_id!r}.", code="unknown_decision")
        if policy is None:
            policy = policies.stored_policy(s, row.policy_version)
        photos = repo.photos_by_id(s, row.photo_ids)
        item = repo.get_catalog_item(s, str(row.inputs.get("sku", "")))
    if not row.photo_ids:
        raise Invalid(f"Decision {decision_id} covers no photo to replay.", code="no_photos")
    found = {p.id for p in photos}
    for pid in row.photo_ids:
        if pid not in found:
            raise NotFound(
                f"Photo {pid} of decision {decision_id} no longer exists, so the decision "
                "cannot be replayed.",
                code="photo_missing",
            )
    grader = _grader_for(svc, row.model_version, decision_id, models_dir)
    data = []
    for p in photos:
        if not svc.photos.exists(p.digest):
            raise NotFound(
                f"Photo {p.id} of decision {decision_id} is gone from the photo store, so "
                "the decision cannot be replayed.",
                code="photo_missing",
            )
        data.append(svc.photos.get(p.digest))
    result = grader.grade_decoded([grader.decode(b) for b in data])
    inputs = row.inputs
    note = ""
    similarity: float | None = None
    if result.item is not None and inputs.get("has_reference"):
        reference = reference_embedding(svc, item, grader) if item is not None else None
        if reference is not None:
            similarity = cosine_similarity(result.item.embedding, reference)
        else:
            similarity = inputs.get("similarity")
            note = "The SKU's catalog photo is gone: the stored similarity was used."
    qualities = [
        PhotoQuality.from_report(g.quality, photo_id=p.id, view=p.view)
        for p, g in zip(photos, result.photos, strict=True)
    ]
    replayed = decide.shopper_decision(
        policy,
        photos=qualities,
        item=result.item,
        similarity=similarity,
        **stored_facts(row),
    )
    original = _view_of_row(row)
    again = _view(
        replayed, result.item, similarity, {q.photo_id or "": q.passed for q in qualities}
    )
    differences = compare(original, again, tolerance)
    return ReplayResult(
        decision_id=row.id,
        return_id=row.return_id,
        model_version=row.model_version,
        original=original,
        replayed=again,
        differences=differences,
        reproduced=not differences,
        tolerance=tolerance,
        note=note,
    )


def _grader_for(
    svc: ReturnLensService, version: str, decision_id: str, models_dir: Path | None
) -> Grader:
    """The serving grader when it runs ``version``, else that version from the registry."""
    if svc.grader.card.model_version == version:
        return svc.grader
    from vision.model import OnnxModel
    from vision.registry import ModelRegistry

    registry = ModelRegistry(models_dir)
    try:
        entry = registry.get(version)
    except ModelError as exc:
        raise NotFound(
            f"Model {version}, which made decision {decision_id}, is neither the serving "
            f"model ({svc.grader.card.model_version}) nor in the registry at {registry.root}.",
            code="model_unavailable",
        ) from exc
    return Grader(OnnxModel(entry.path), profile=svc.grader.profile, limits=svc.grader.limits)


def stored_facts(row: Decision) -> dict[str, Any]:
    """The non-model facts the policy read, as ``decide.shopper_decision`` takes them."""
    try:
        return _facts_of(row.inputs, row.created_at)
    except (KeyError, TypeError, ValueError) as exc:
        raise Invalid(
            f"Decision {row.id} was stored without the facts its policy read ({exc}), so it "
            "cannot be re-decided.",
            code="decision_inputs_missing",
        ) from exc


def _facts_of(inputs: Mapping[str, Any], created_at: datetime) -> dict[str, Any]:
    reused = inputs.get("reused_photo")
    return {
        "category": inputs["category"],
        "sku": inputs["sku"],
        "price": float(inputs["price"]),
        "reason": inputs["reason"],
        "delivered_at": datetime.fromisoformat(inputs["delivered_at"]),
        "now": created_at,
        "history_times": [datetime.fromisoformat(t) for t in inputs.get("history_times", [])],
        "rejected_returns": int(inputs.get("rejected_returns", 0)),
        "has_reference": bool(inputs.get("has_reference")),
        "reused": None
        if reused is None
        else (
            int(reused["distance"]),
            reused["other_return_id"],
            reused["other_photo_id"],
            reused.get("photo_id"),
        ),
        "previous_retakes": int(inputs.get("previous_retakes", 0)),
        "copied": _copy_match(inputs.get("copied_photo")),
        "catalog_copy": _copy_match(inputs.get("catalog_copy")),
    }


def _copy_match(stored: Mapping[str, Any] | None) -> CopyMatch | None:
    """A stored copy-detection match (decisions before it was stored have none)."""
    if stored is None:
        return None
    return CopyMatch(
        float(stored["score"]),
        stored["photo_id"],
        stored["other_photo_id"],
        other_return_id=stored.get("other_return_id"),
        sku=stored.get("sku"),
    )


def _flag_keys(flags: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    return tuple(sorted(f"{f['code']}:{f['effect']}" for f in flags))


def _view_of_row(row: Decision) -> DecisionView:
    similarity = row.inputs.get("similarity")
    return DecisionView(
        outcome=row.outcome,
        grade=row.grade,
        confidence=row.confidence,
        flags=_flag_keys(row.flags),
        grade_probs=dict(row.grade_probs),
        damage_probs=dict(row.damage_probs),
        similarity=None if similarity is None else float(similarity),
        photos_passed={str(p["photo_id"]): bool(p["passed"]) for p in row.inputs["photos"]},
        policy_version=row.policy_version,
    )


def _view(
    d: ShopperDecision,
    item: ItemScores | None,
    similarity: float | None,
    passed: Mapping[str, bool],
) -> DecisionView:
    return DecisionView(
        outcome=d.outcome,
        grade=d.grade,
        confidence=d.confidence,
        flags=_flag_keys([f.to_dict() for f in d.flags]),
        grade_probs=probs_dict(item.grade_labels, item.grade_probs) if item else {},
        damage_probs=probs_dict(item.damage_labels, item.damage_probs) if item else {},
        similarity=None if similarity is None else round(float(similarity), 6),
        photos_passed=dict(passed),
        policy_version=d.policy_version,
    )


def compare(a: DecisionView, b: DecisionView, tolerance: float) -> tuple[Difference, ...]:
    """Every field where ``b`` differs from ``a``: exactly, or by more than ``tolerance``
    for the numbers."""
    out: list[Difference] = []
    for name in ("outcome", "grade", "flags", "policy_version"):
        if getattr(a, name) != getattr(b, name):
            out.append(Difference(name, getattr(a, name), getattr(b, name)))
    for name in ("confidence", "similarity"):
        x, y = getattr(a, name), getattr(b, name)
        if (x is None) != (y is None) or (x is not None and abs(x - y) > tolerance):
            out.append(Difference(name, x, y))
    for name in ("grade_probs", "damage_probs"):
        x, y = getattr(a, name), getattr(b, name)
        for label in sorted(set(x) | set(y)):
            if label not in x or label not in y or abs(x[label] - y[label]) > tolerance:
                out.append(Difference(f"{name}.{label}", x.get(label), y.get(label)))
    for pid in sorted(set(a.photos_passed) | set(b.photos_passed)):
        x, y = a.photos_passed.get(pid), b.photos_passed.get(pid)
        if x != y:
            out.append(Difference(f"photo_passed.{pid}", x, y))
    return tuple(out)


# ---------------------------------------------------------------------------- simulate
@dataclass(frozen=True)
class ChangedDecision:
    decision_id: str
    return_id: str
    created_at: datetime
    original: str
    simulated: str


@dataclass(frozen=True)
class SimulationResult:
    policy_version: str
    since: datetime
    until: datetime | None
    decisions: int  # re-decided
    changed: tuple[ChangedDecision, ...]
    transitions: Mapping[tuple[str, str], int]  # (from, to) -> count, changes only
    skipped: tuple[tuple[str, str], ...] = ()  # (decision id, why) not re-decided

    def as_dict(self) -> dict[str, Any]:
        return {
            "policy_version": self.policy_version,
            "since": self.since.isoformat(),
            "until": None if self.until is None else self.until.isoformat(),
            "decisions": self.decisions,
            "changed": len(self.changed),
            "skipped": [{"decision_id": d, "reason": why} for d, why in self.skipped],
            "transitions": [
                {"from": f, "to": t, "count": n} for (f, t), n in sorted(self.transitions.items())
            ],
            "changed_decisions": [
                {
                    "decision_id": c.decision_id,
                    "return_id": c.return_id,
                    "created_at": c.created_at.isoformat(),
                    "from": c.original,
                    "to": c.simulated,
                }
                for c in self.changed
            ],
        }


def simulate_policy(
    db: Database, policy: Policy, since: datetime, until: datetime | None = None
) -> SimulationResult:
    """Re-decide every shopper decision made in [since, until) under ``policy`` from its
    stored scores and facts; which outcomes would change."""
    changed: list[ChangedDecision] = []
    skipped: list[tuple[str, str]] = []
    with db.read() as s:
        rows = repo.decisions_between(s, since, until)
        for row in rows:
            photos = {p.id: p for p in repo.photos_by_id(s, row.photo_ids)}
            try:
                outcome = stored_decision(policy, row, photos, _usable_ids(s, row)).outcome
            except (Invalid, PolicyInputError) as exc:  # a row without what the policy reads
                skipped.append((row.id, exc.message))
                continue
            if outcome != row.outcome:
                changed.append(
                    ChangedDecision(row.id, row.return_id, row.created_at, row.outcome, outcome)
                )
    transitions = Counter((c.original, c.simulated) for c in changed)
    return SimulationResult(
        policy.version,
        since,
        until,
        len(rows) - len(skipped),
        tuple(changed),
        transitions,
        tuple(skipped),
    )


def _usable_ids(s: Session, row: Decision) -> list[str]:
    grading = s.get(Grading, row.grading_id)
    return list(grading.usable_photo_ids) if grading is not None else []


def stored_decision(
    policy: Policy, row: Decision, photos: Mapping[str, Photo], usable_ids: Sequence[str]
) -> ShopperDecision:
    """The decision ``policy`` makes from a decision row's stored scores and facts."""
    qualities = stored_qualities(row, photos)
    facts = stored_facts(row)
    ctx = ReturnContext(
        category=facts["category"],
        sku=facts["sku"],
        price=facts["price"],
        reason=facts["reason"],
        delivered_at=facts["delivered_at"],
        now=facts["now"],
        photos=tuple(qualities),
        scores=_stored_scores(row, [photos[i] for i in usable_ids if i in photos]),
        history=CustomerHistory(
            return_times=tuple(facts["history_times"]),
            rejected_returns=facts["rejected_returns"],
        ),
        similarity=row.inputs.get("similarity"),
        reused_photo=ReusedPhoto(*facts["reused"]) if facts["reused"] else None,
        previous_retakes=facts["previous_retakes"],
        has_reference=facts["has_reference"],
        copied_photo=facts["copied"],
        catalog_copy=facts["catalog_copy"],
    )
    return decide_return(policy, ctx)


def stored_qualities(row: Decision, photos: Mapping[str, Photo]) -> list[PhotoQuality]:
    """The quality-gate verdicts a decision was made with, from its stored facts (the
    failed checks and the view each shows from its photos' rows)."""
    qualities = []
    for entry in row.inputs["photos"]:
        pid = str(entry["photo_id"])
        view = photos[pid].view if pid in photos else None
        if entry["passed"]:
            qualities.append(PhotoQuality(passed=True, photo_id=pid, view=view))
            continue
        checks = photos[pid].quality.get("checks", []) if pid in photos else []
        issues = tuple(QualityIssue(c["name"], c["message"]) for c in checks if not c["passed"])
        qualities.append(PhotoQuality(passed=False, issues=issues, photo_id=pid, view=view))
    return qualities


def _stored_scores(row: Decision, usable: Sequence[Photo]) -> Scores | None:
    """The aggregated scores the decision was made from; None when no photo was usable.
    Labels come from the photos' stored scores (a JSON object's key order is not kept on
    every database); familiarity follows ``ItemScores.familiar``."""
    if row.grade is None or not usable or not row.grade_probs:
        return None
    first = usable[0].scores
    labels = tuple(first.get("grade_labels") or row.grade_probs)
    flags = [p.scores.get("familiar") for p in usable]
    familiar = (
        False
        if any(f is False for f in flags)
        else (None if any(f is None for f in flags) else True)
    )
    return Scores(
        labels,
        dict(row.grade_probs),
        dict(row.damage_probs),
        familiar=familiar,
        unfamiliarity=tuple(p.scores.get("unfamiliarity") for p in usable),
    )


def open_service(
    database_url: str, photos: Path | PhotoStorage, model_path: Path
) -> ReturnLensService:
    """A service for offline replays: the database (not migrated), the photo store (a
    folder, or a store such as the service's S3 bucket) and
    the model at ``model_path``, with the shipped policy as its current one (replays
    decide with each decision's stored policy). ``svc.db.dispose()`` when done."""
    from serving.policy import load_policy
    from serving.storage.db import open_database
    from serving.storage.photostore import PhotoStore
    from vision.errors import ConfigError

    if isinstance(photos, Path):
        if not photos.is_dir():
            raise ConfigError(f"there is no photo folder {photos}", code="storage_unavailable")
        photos = PhotoStore(photos)
    grader = Grader.load(model_path)
    db = open_database(database_url, migrate=False)
    return ReturnLensService(
        db,
        photos,
        grader,
        Grader(grader.model, profile="dock"),
        load_policy(),
    )
