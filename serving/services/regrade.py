"""Batch regrading: a model over stored history, its predictions stored beside the originals.

``returnlens regrade --model VERSION [--since DATE]`` grades the stored photos of past
shopper decisions with another model (a challenger over history, or a backfill after a
promotion). Each decision is graded exactly as shadow mode grades a live one
(:func:`serving.services.shadow.grade_in_shadow`): only the model runs, on the stored
copies of the photos that passed the quality gate (the gate's stored verdicts stand),
the same policy decides again with the facts stored with the decision, and one
``shadow_predictions`` row is written per (decision, model version). So
``returnlens shadow report`` compares a regrade with the champion and the reviewers like
any shadow run, and a regrade is idempotent and resumable: a decision that already has
a row for this model is skipped, and a killed run is finished by running it again.

Two engines share that one function:

* ``local``: a process pool (one ONNX Runtime session per process, one thread each, so N
  processes use N cores without oversubscribing);
* ``ray``: Ray Data (``pip install returnlens[scale]``; ``ray.init()`` locally or a
  cluster address), one actor per CPU holding one ONNX Runtime session, reading photos
  from whatever photo store the settings name (the S3 store in a cluster).

Each worker builds its own context through ``open_context``: a picklable, top-level
callable given by the caller (the CLI builds the service from the settings, as the API
does), because an ONNX Runtime session and a database pool cannot cross processes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from serving.domain_errors import Invalid
from serving.storage.db import Database
from serving.storage.tables import Decision, ShadowPrediction

ENGINES = ("local", "ray")
BATCH = 8  # decisions per task: small enough to spread, large enough to amortise

# open_context() -> (service, challenger grader, policy fitted to the challenger's card)
OpenContext = Callable[[], tuple[Any, Any, Any]]


@dataclass(frozen=True)
class RegradeOutcome:
    """What grading one decision did: ``stored`` a row, found it ``already`` there, or
    ``failed`` (the error kept, the run goes on)."""

    decision_id: str
    status: str  # stored | already | failed
    photos: int = 0  # photos the model graded
    error: str | None = None


@dataclass(frozen=True)
class RegradeResult:
    engine: str
    workers: int
    model_version: str
    decisions: int
    stored: int
    already: int
    failed: int
    photos: int
    seconds: float
    errors: tuple[tuple[str, str], ...]  # (decision id, error), the first few

    @property
    def photos_per_second(self) -> float:
        return self.photos / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["errors"] = [list(e) for e in self.errors]
        out["photos_per_second"] = round(self.photos_per_second, 3)
        out["photos_per_second_per_worker"] = round(self.photos_per_second / self.workers, 3)
        return out


def pending_decisions(db: Database, model_version: str, since: datetime | None) -> list[str]:
    """Decisions since ``since`` (oldest first) with photos and no row for this model."""
    done = select(ShadowPrediction.decision_id).where(
        ShadowPrediction.model_version == model_version
    )
    query = select(Decision.id).where(Decision.id.not_in(done)).order_by(Decision.created_at)
    if since is not None:
        query = query.where(Decision.created_at >= since)
    with db.read() as s:
        rows = s.execute(query.add_columns(Decision.photo_ids)).all()
    return [r[0] for r in rows if r[1]]


def grade_decisions(context: tuple[Any, Any, Any], ids: Iterable[str]) -> list[RegradeOutcome]:
    """Grade each decision with the context's model; one failure never stops the rest."""
    from serving.services.shadow import grade_in_shadow

    svc, grader, policy = context
    out: list[RegradeOutcome] = []
    for decision_id in ids:
        try:
            row = grade_in_shadow(svc, grader, policy, decision_id)
        except Exception as exc:  # a missing photo, a bad row: recorded, the run goes on
            out.append(RegradeOutcome(decision_id, "failed", error=f"{type(exc).__name__}: {exc}"))
            continue
        if row is None:
            out.append(RegradeOutcome(decision_id, "already"))
        else:
            out.append(RegradeOutcome(decision_id, "stored", photos=len(row.unfamiliarity)))
    return out


def _chunks(ids: Sequence[str], size: int) -> list[list[str]]:
    return [list(ids[i : i + size]) for i in range(0, len(ids), size)]


# ------------------------------------------------------------------- local engine
_CONTEXT: tuple[Any, Any, Any] | None = None


def _init_worker(open_context: OpenContext) -> None:
    global _CONTEXT
    _CONTEXT = open_context()


def _grade_chunk(ids: list[str]) -> list[RegradeOutcome]:
    assert _CONTEXT is not None, "the pool initializer did not run"
    return grade_decisions(_CONTEXT, ids)


def _run_local(ids: Sequence[str], open_context: OpenContext, workers: int) -> list[RegradeOutcome]:
    import multiprocessing

    # spawn, not fork: the parent may hold threads (ONNX Runtime, the DB pool).
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_init_worker, initargs=(open_context,)
    ) as pool:
        return [o for chunk in pool.map(_grade_chunk, _chunks(ids, BATCH)) for o in chunk]


# --------------------------------------------------------------------- ray engine
class _RayGrader:
    """One Ray actor: one context (ONNX Runtime session, DB pool, photo store)."""

    def __init__(self, open_context: OpenContext) -> None:
        self.context = open_context()

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        outcomes = grade_decisions(self.context, [str(i) for i in batch["decision_id"]])
        return {
            "decision_id": [o.decision_id for o in outcomes],
            "status": [o.status for o in outcomes],
            "photos": [o.photos for o in outcomes],
            "error": [o.error or "" for o in outcomes],
        }


def _run_ray(
    ids: Sequence[str], open_context: OpenContext, workers: int, address: str | None
) -> list[RegradeOutcome]:
    try:
        import ray
    except ImportError as exc:
        raise Invalid(
            "the ray engine needs the scale extra: pip install 'returnlens[scale]'",
            code="engine_unavailable",
        ) from exc
    started_here = not ray.is_initialized()
    if started_here:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    try:
        ds = ray.data.from_items([{"decision_id": i} for i in ids])
        graded = ds.map_batches(
            _RayGrader,
            fn_constructor_kwargs={"open_context": open_context},
            batch_size=BATCH,
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=1,
        )
        rows = graded.take_all()
    finally:
        if started_here:
            ray.shutdown()
    return [
        RegradeOutcome(r["decision_id"], r["status"], int(r["photos"]), r["error"] or None)
        for r in rows
    ]


def regrade(
    db: Database,
    open_context: OpenContext,
    *,
    model_version: str,
    since: datetime | None = None,
    engine: str = "local",
    workers: int = 1,
    address: str | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> RegradeResult:
    """Grade every pending decision with the model and store its predictions."""
    if engine not in ENGINES:
        raise Invalid(
            f"unknown engine {engine!r}; use one of {', '.join(ENGINES)}", code="bad_engine"
        )
    if workers < 1:
        raise Invalid("--workers must be 1 or more", code="invalid_setting")
    ids = pending_decisions(db, model_version, since)
    start = clock()
    outcomes: list[RegradeOutcome] = []
    if ids:
        outcomes = (
            _run_local(ids, open_context, workers)
            if engine == "local"
            else _run_ray(ids, open_context, workers, address)
        )
    seconds = clock() - start
    count = {s: sum(o.status == s for o in outcomes) for s in ("stored", "already", "failed")}
    return RegradeResult(
        engine=engine,
        workers=workers,
        model_version=model_version,
        decisions=len(ids),
        stored=count["stored"],
        already=count["already"],
        failed=count["failed"],
        photos=sum(o.photos for o in outcomes),
        seconds=round(seconds, 3),
        errors=tuple((o.decision_id, o.error or "") for o in outcomes if o.error)[:10],
    )
