"""Shadow mode: a challenger model graded beside the champion on live uploads.

With ``RETURNLENS_SHADOW_MODEL_PATH`` (or ``..._SHADOW_MODEL_VERSION``, a registry
version) the service loads a second model at start-up (``load_shadow``). It must grade
with the champion's grade and damage labels: other labels refuse start-up with one
sentence (``ConfigError``); a file that does not load is a warning and no shadow.

After an upload's decision is committed and answered, ``shopper.upload_photos`` hands
the decision id to the ``ShadowRunner``: a bounded queue (``shadow_queue``) in front of
one low-priority worker thread. When the queue is full the decision is skipped and
counted, so the shopper's request never waits for, slows down on or fails because of
the challenger. The worker reads the decision's stored photos back from the photo store,
runs the challenger on those that passed the quality gate (the gate is not the model's:
the stored verdicts stand), aggregates them (worst view), recomputes the catalog
similarity from the challenger's embedding and decides again with the same policy
(fitted to the challenger's card) and the facts stored with the decision (as
``returnlens policy simulate`` does: ``replay.stored_facts``, ``replay.stored_qualities``),
then stores one ``shadow_predictions`` row: scores, grade, confidence, familiarity and
the outcome the challenger would have given.

``shadow_report`` compares the rows with the champion's decisions and with reviewer
verdicts as they arrive (``returnlens shadow report``, ``GET /v1/admin/shadow``):
agreement on grade and outcome, each side's auto-decision rate (approved or rejected
without a person), each side's grade accuracy against reviewed returns and the list of
decisions where the two disagree.

A reviewed return's true grade follows the reviewed-label export
(``serving.storage.review_export``): the reviewer's grade when the verdict names one,
else, for ``approve`` and ``correct``, the champion's grade on the return's latest
decision (the reviewer accepted that reading); a ``reject`` without a grade says nothing
about the condition. The latest verdict per return wins, and it is compared with the
return's latest shadowed decision.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from serving.checks import check_same_labels
from serving.domain_errors import NotFound
from serving.policy import Policy
from serving.services import decide, replay
from serving.services.facts import reference_embedding
from serving.services.scores import probs_dict
from serving.services.service import ReturnLensService
from serving.storage import repo
from serving.storage.db import Database
from serving.storage.tables import Decision, Photo, Review, ShadowPrediction
from vision.aggregate import aggregate, cosine_similarity
from vision.model import SERVING_BATCH
from vision.pipeline import Grader, Lanes
from vision.types import ItemScores

log = logging.getLogger("returnlens.shadow")

AUTO_OUTCOMES = ("approved", "rejected")  # decided without a person
DEFAULT_QUEUE = 64
DISAGREEMENTS_SHOWN = 50
SHADOW_NICE = 10
IN_BATCH = 500


# ------------------------------------------------------------------------- start-up
def load_shadow(
    svc: ReturnLensService,
    locate: Callable[[], Path | None],
    *,
    queue: int = DEFAULT_QUEUE,
    threads: int = 1,
) -> ShadowRunner | None:
    """The runner for the challenger ``locate()`` names (None: no shadow configured),
    set as ``svc.shadow``. A model that cannot be found or loaded is a warning and no
    shadow; one with other labels than the champion raises ConfigError (start-up stops).
    """
    from vision.model import OnnxModel

    model_path: Path | None = None
    try:
        model_path = locate()
        if model_path is None:
            return None
        model = OnnxModel(model_path, intra_op_threads=threads)
    except Exception as exc:  # any load failure: warn, serve without it
        log.warning("shadow model %s did not load, so no shadow runs: %s", model_path or "-", exc)
        return None
    check_same_labels(svc.grader.card, model.card)
    grader = Grader(model, profile=svc.grader.profile, limits=svc.grader.limits, lanes=Lanes(1))
    runner = ShadowRunner(svc, grader, max_pending=queue)
    svc.shadow = runner
    log.info(
        "shadow mode: challenger %s beside champion %s (policy %s)",
        model.card.model_version,
        svc.model_version,
        runner.policy.version,
    )
    return runner


# --------------------------------------------------------------------------- runner
def _lower_priority() -> None:
    """The shadow worker yields the CPU to requests (Linux schedules threads one by one;
    elsewhere this would renice the whole process, so it is skipped)."""
    if sys.platform == "linux":
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), SHADOW_NICE)


class ShadowRunner:
    """A bounded queue of decisions to grade with the challenger, one worker thread.

    ``submit`` never blocks: a full queue skips the decision (``counts['skipped']``).
    ``drain`` waits until the queue is empty (tests, shutdown); ``close`` stops the
    worker, dropping what still waits.
    """

    def __init__(
        self,
        svc: ReturnLensService,
        grader: Grader,
        *,
        max_pending: int = DEFAULT_QUEUE,
        grade: Callable[[ReturnLensService, Grader, Policy, str], object] | None = None,
    ) -> None:
        self.svc = svc
        self.grader = grader
        self.policy = decide.policy_for_model(svc.policy, grader.card)
        self.max_pending = max_pending
        self.counts: Counter[str] = Counter()  # submitted, skipped, stored, failed
        self._grade = grade or grade_in_shadow
        self._pending = 0
        self._idle = threading.Condition()
        self._closed = False
        self._pool = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="returnlens-shadow", initializer=_lower_priority
        )

    @property
    def model_version(self) -> str:
        return self.grader.card.model_version

    @property
    def pending(self) -> int:
        with self._idle:
            return self._pending

    def submit(self, decision_id: str) -> bool:
        """Queue ``decision_id`` for the challenger; False (counted) when full or closed."""
        with self._idle:
            if self._closed or self._pending >= self.max_pending:
                self.counts["skipped"] += 1
                return False
            self._pending += 1
            self.counts["submitted"] += 1
        try:
            self._pool.submit(self._run, decision_id)
        except RuntimeError:  # shut down between the check and the submit
            self._done("skipped")
            return False
        return True

    def _run(self, decision_id: str) -> None:
        outcome = "stored"
        try:
            if self._grade(self.svc, self.grader, self.policy, decision_id) is None:
                outcome = "already"
        except Exception:  # the challenger never reaches a request
            outcome = "failed"
            log.exception("shadow grading of decision %s failed", decision_id)
        self._done(outcome)

    def _done(self, outcome: str) -> None:
        with self._idle:
            self._pending -= 1
            self.counts[outcome] += 1
            self._idle.notify_all()

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until nothing is queued or running; False if ``timeout`` passed first."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self) -> None:
        with self._idle:
            self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)

    def status(self) -> ShadowQueueOut:
        with self._idle:
            return ShadowQueueOut(
                model_version=self.model_version,
                policy_version=self.policy.version,
                pending=self._pending,
                max_pending=self.max_pending,
                counts=dict(self.counts),
            )


def grade_in_shadow(
    svc: ReturnLensService, grader: Grader, policy: Policy, decision_id: str
) -> ShadowPrediction | None:
    """Grade decision ``decision_id``'s stored photos with ``grader``, decide under
    ``policy`` and store the row; None when this model already has a row for it."""
    version = grader.card.model_version
    with svc.db.read() as s:
        row = s.get(Decision, decision_id)
        if row is None:
            raise NotFound(f"There is no decision {decision_id!r}.", code="unknown_decision")
        done = s.scalar(
            select(ShadowPrediction.id).where(
                ShadowPrediction.decision_id == decision_id,
                ShadowPrediction.model_version == version,
            )
        )
        photos = repo.photos_by_id(s, row.photo_ids)
        catalog = repo.get_catalog_item(s, str(row.inputs.get("sku", "")))
    if done is not None:
        return None
    item = _challenger_scores(svc, grader, row, photos)
    facts = replay.stored_facts(row)
    similarity: float | None = None
    if item is not None and facts["has_reference"]:
        reference = reference_embedding(svc, catalog, grader) if catalog is not None else None
        similarity = (
            cosine_similarity(item.embedding, reference)
            if reference is not None
            else row.inputs.get("similarity")
        )
    decision = decide.shopper_decision(
        policy,
        photos=replay.stored_qualities(row, {p.id: p for p in photos}),
        item=item,
        similarity=similarity,
        **facts,
    )
    card = grader.card
    shadow = ShadowPrediction(
        id=repo.new_id("shd"),
        decision_id=row.id,
        return_id=row.return_id,
        model_version=version,
        policy_version=decision.policy_version,
        grade=decision.grade,
        confidence=decision.confidence,
        grade_probs=probs_dict(card.grade_labels, item.grade_probs) if item else {},
        damage_probs=probs_dict(card.damage_labels, item.damage_probs) if item else {},
        familiar=item.familiar if item else None,
        unfamiliarity=[
            None if p.unfamiliarity is None else round(float(p.unfamiliarity), 6)
            for p in (item.per_photo if item else ())
        ],
        outcome=decision.outcome,
        flags=sorted(f"{f.code}:{f.effect}" for f in decision.flags),
        photo_ids=[p.id for p in photos],
        created_at=svc.now(),
    )
    try:
        with svc.db.write() as s:
            s.add(shadow)
    except IntegrityError:  # another worker process stored it first
        return None
    return shadow


def _challenger_scores(
    svc: ReturnLensService, grader: Grader, row: Decision, photos: Sequence[Photo]
) -> ItemScores | None:
    """The challenger's worst-view scores over the decision's photos that passed the
    quality gate. The gate is not the model's: its stored verdicts stand (re-running it
    on the stored copies would judge the resolution of the downscaled copy, not of the
    upload), so only the model runs here, on the stored copies of those photos."""
    passed = {str(e["photo_id"]) for e in row.inputs.get("photos", []) if e.get("passed")}
    usable = [p for p in photos if p.id in passed]
    if not usable:
        return None
    rgb = [grader.decode(svc.photos.get(p.digest)).rgb for p in usable]
    with grader.lanes.inference:
        outputs = grader.model.predict_images(rgb, SERVING_BATCH)
    card = grader.card
    scores = [outputs.photo(i) for i in range(len(usable))]
    return aggregate(scores, card.grade_labels, card.damage_labels)


# --------------------------------------------------------------------------- report
class ShadowQueueOut(BaseModel):
    """This process's shadow runner (process-local counts since start-up)."""

    model_version: str
    policy_version: str
    pending: int
    max_pending: int
    counts: dict[str, int]


class SideOut(BaseModel):
    """One model's figures over the compared decisions."""

    model_versions: list[str]
    auto_decision_rate: float | None  # share approved or rejected without a person
    reviewed: int  # compared decisions whose return has a reviewer's grade
    correct: int
    accuracy: float | None  # correct / reviewed


class DisagreementOut(BaseModel):
    decision_id: str
    return_id: str
    created_at: datetime
    champion_grade: str | None
    champion_outcome: str
    challenger_grade: str | None
    challenger_outcome: str


class ChallengerReportOut(BaseModel):
    """The champion's decisions against one challenger version."""

    challenger: str
    compared: int
    grade_agreement: float | None
    outcome_agreement: float | None
    champion_side: SideOut
    challenger_side: SideOut
    transitions: dict[str, int]  # "champion outcome -> challenger outcome", changes only
    disagreements_total: int
    disagreements: list[DisagreementOut]  # the most recent first, at most ``limit``


class ShadowReportOut(BaseModel):
    since: datetime | None
    challengers: list[ChallengerReportOut]
    queue: ShadowQueueOut | None = None  # the answering process's runner, if any


def _rate(n: int, d: int) -> float | None:
    return None if d == 0 else round(n / d, 6)


def reviewed_grades(db: Database, return_ids: set[str]) -> dict[str, str]:
    """Return id -> the grade its latest reviewer verdict establishes (module docstring);
    returns without one are left out."""
    out: dict[str, str] = {}
    if not return_ids:
        return out
    ids = sorted(return_ids)
    with db.read() as s:
        latest: dict[str | None, Review] = {}
        for i in range(0, len(ids), IN_BATCH):  # bounded IN lists (SQLite's variable cap)
            stmt = (
                select(Review)
                .where(Review.subject_type == "return", Review.return_id.in_(ids[i : i + IN_BATCH]))
                .order_by(Review.created_at, Review.id)
            )
            latest.update({r.return_id: r for r in s.scalars(stmt)})  # later rows win
        for return_id, review in latest.items():
            if return_id is None:
                continue
            grade = review.grade
            if grade is None and review.verdict in ("approve", "correct"):
                decision = repo.latest_decision(s, return_id)
                grade = decision.grade if decision is not None else None
            if grade is not None:
                out[return_id] = grade
    return out


def shadow_report(
    db: Database,
    *,
    since: datetime | None = None,
    limit: int = DISAGREEMENTS_SHOWN,
) -> ShadowReportOut:
    """Compare every stored shadow prediction (created since ``since``) with its
    champion decision and with the reviewers' verdicts, one section per challenger."""
    with db.read() as s:
        stmt = select(ShadowPrediction, Decision).join(
            Decision, Decision.id == ShadowPrediction.decision_id
        )
        if since is not None:
            stmt = stmt.where(ShadowPrediction.created_at >= since)
        stmt = stmt.order_by(Decision.created_at, Decision.sequence, Decision.id)
        pairs = [(sh, dec) for sh, dec in s.execute(stmt)]
    truth = reviewed_grades(db, {dec.return_id for _, dec in pairs})
    by_version: dict[str, list[tuple[ShadowPrediction, Decision]]] = {}
    for sh, dec in pairs:
        by_version.setdefault(sh.model_version, []).append((sh, dec))
    sections = [
        _section(version, rows, truth, limit) for version, rows in sorted(by_version.items())
    ]
    return ShadowReportOut(since=since, challengers=sections)


def _section(
    version: str,
    rows: list[tuple[ShadowPrediction, Decision]],
    truth: dict[str, str],
    limit: int,
) -> ChallengerReportOut:
    n = len(rows)
    same_grade = sum(1 for sh, dec in rows if sh.grade == dec.grade)
    same_outcome = sum(1 for sh, dec in rows if sh.outcome == dec.outcome)
    # Accuracy: each reviewed return's latest shadowed decision (rows are in time order).
    last: dict[str, tuple[ShadowPrediction, Decision]] = {}
    for sh, dec in rows:
        if dec.return_id in truth:
            last[dec.return_id] = (sh, dec)
    champion_ok = sum(1 for rid, (_, dec) in last.items() if dec.grade == truth[rid])
    challenger_ok = sum(1 for rid, (sh, _) in last.items() if sh.grade == truth[rid])
    differ = [(sh, dec) for sh, dec in rows if sh.grade != dec.grade or sh.outcome != dec.outcome]
    transitions = Counter(
        f"{dec.outcome} -> {sh.outcome}" for sh, dec in rows if sh.outcome != dec.outcome
    )
    return ChallengerReportOut(
        challenger=version,
        compared=n,
        grade_agreement=_rate(same_grade, n),
        outcome_agreement=_rate(same_outcome, n),
        champion_side=SideOut(
            model_versions=sorted({dec.model_version for _, dec in rows}),
            auto_decision_rate=_rate(sum(1 for _, d in rows if d.outcome in AUTO_OUTCOMES), n),
            reviewed=len(last),
            correct=champion_ok,
            accuracy=_rate(champion_ok, len(last)),
        ),
        challenger_side=SideOut(
            model_versions=[version],
            auto_decision_rate=_rate(sum(1 for sh, _ in rows if sh.outcome in AUTO_OUTCOMES), n),
            reviewed=len(last),
            correct=challenger_ok,
            accuracy=_rate(challenger_ok, len(last)),
        ),
        transitions=dict(sorted(transitions.items())),
        disagreements_total=len(differ),
        disagreements=[
            DisagreementOut(
                decision_id=dec.id,
                return_id=dec.return_id,
                created_at=dec.created_at,
                champion_grade=dec.grade,
                champion_outcome=dec.outcome,
                challenger_grade=sh.grade,
                challenger_outcome=sh.outcome,
            )
            for sh, dec in reversed(differ[-limit:] if limit > 0 else [])
        ],
    )


def report_lines(report: ShadowReportOut) -> list[str]:
    """The human form of a report (``returnlens shadow report``)."""
    window = f" since {report.since.isoformat()}" if report.since else ""
    if not report.challengers:
        return [f"no shadow predictions{window}"]
    lines: list[str] = []
    for c in report.challengers:
        ch, cl = c.champion_side, c.challenger_side
        lines += [
            f"challenger {c.challenger} vs champion {', '.join(ch.model_versions)}: "
            f"{c.compared} decision(s) compared{window}",
            f"  agreement: grade {_pct(c.grade_agreement)}, outcome {_pct(c.outcome_agreement)}",
            f"  auto-decision rate: champion {_pct(ch.auto_decision_rate)}, "
            f"challenger {_pct(cl.auto_decision_rate)}",
            f"  accuracy on {ch.reviewed} reviewed return(s): champion {_pct(ch.accuracy)} "
            f"({ch.correct}), challenger {_pct(cl.accuracy)} ({cl.correct})",
        ]
        for change, count in c.transitions.items():
            lines.append(f"  outcome {change}: {count}")
        lines.append(f"  disagreements: {c.disagreements_total}")
        for d in c.disagreements:
            lines.append(
                f"    {d.decision_id} (return {d.return_id}): champion {d.champion_grade} "
                f"{d.champion_outcome}, challenger {d.challenger_grade} {d.challenger_outcome}"
            )
        if c.disagreements_total > len(c.disagreements):
            lines.append(f"    ... {c.disagreements_total - len(c.disagreements)} more")
    return lines


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"
