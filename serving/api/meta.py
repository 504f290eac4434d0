"""Process and model endpoints: liveness, readiness, Prometheus metrics, model card.

``/healthz`` answers while the process runs. ``/readyz`` is 503 until the model is
loaded and warmed up and the database migrated, and again while shutting down or while
the database or the photo store (an S3 bucket) does not answer, so a load balancer only
routes to replicas that can grade and store. A model without an unfamiliarity
score is ready (it grades, and every decision goes to a person), but ``/readyz`` and
``/v1/model`` say so: ``"unfamiliarity": false`` and a sentence in
``unfamiliarity_note``.
``"jobs"`` reports the background job queue (``serving.services.jobs``): its backend,
whether it answers, the tasks waiting and the jobs by status; readiness does not depend
on it (``null``: no queue in this process).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from serving.api.deps import MetricsDep, ServiceDep
from serving.errors import error_response, error_responses
from serving.services import admin
from serving.services.familiarity import unfamiliarity_status
from serving.services.records import ModelInfoOut

router = APIRouter(tags=["meta"])


@router.get("/healthz", summary="Liveness: the process is up")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    responses=error_responses(503),
    summary="Readiness: model loaded and warmed up, database migrated",
)
def readyz(request: Request) -> JSONResponse:
    state = request.app.state
    if not getattr(state, "ready", False):
        return error_response(
            503, "not_ready", "the model or the database is not ready yet", {"ready": False}
        )
    if not state.service.db.ping():
        return error_response(
            503, "not_ready", "the database does not answer", {"ready": False, "database": False}
        )
    if not state.service.photos.ready():  # S3: a HeadBucket, cached for a couple of seconds
        return error_response(
            503,
            "not_ready",
            "the photo store does not answer",
            {"ready": False, "photo_store": False},
        )
    status = unfamiliarity_status(state.service)
    return JSONResponse(
        {
            "status": "ready",
            "ready": True,
            "model_version": getattr(state, "model_version", None),
            "policy_version": getattr(state, "policy_version", None),
            "unfamiliarity": status.available,
            "unfamiliarity_note": status.note,
            "database": True,
            "photo_store": True,
            "jobs": _jobs_state(state),
        }
    )


def _jobs_state(state: Any) -> dict[str, Any] | None:
    """The job queue's state (reported, not required: the service runs without it)."""
    queue = getattr(state, "jobs", None)
    if queue is None:
        return None
    try:
        result: dict[str, Any] = queue.state().to_dict()
    except Exception:  # the jobs table unreadable: the database check above decides
        return {"backend": queue.backend, "reachable": False}
    return result


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics",
    responses={200: {"content": {"text/plain": {}}}},
)
def metrics(metrics: MetricsDep) -> Response:
    return Response(metrics.render(), media_type=metrics.content_type)


@router.get(
    "/v1/model",
    response_model=ModelInfoOut,
    responses=error_responses(503),
    summary="The served model's card summary and the policy version",
)
def model_info(svc: ServiceDep) -> ModelInfoOut:
    return admin.model_info(svc)
