"""The operations dashboard's data: one GET per chart, reviewers and admins only.

Thin on purpose: every route takes the same query parameters (``OpsFilter``: the staff
list's filters, validated by the same model, unknown parameters refused with
``unknown_field``) and returns what ``serving.services.ops_queries`` computed. The page
itself is ``/ops`` (``serving/web/pages.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query

from serving.api.deps import REVIEWER, ServiceDep
from serving.api.schemas import V1
from serving.errors import error_responses
from serving.services import ops, ops_queries
from serving.services.ops import OpsFilter
from serving.services.service import ReturnLensService

router = APIRouter(prefix=f"{V1}/ops", tags=["ops"])
Filter = Annotated[OpsFilter, Query()]

# (path, the query, its answer model, the summary shown in /docs)
CHARTS: tuple[tuple[str, Callable[[ReturnLensService, OpsFilter], Any], type, str], ...] = (
    ("volume", ops_queries.volume, ops.VolumeOut, "Returns per period, reason and category"),
    ("outcomes", ops_queries.outcomes, ops.OutcomesOut, "Outcome mix of the latest decisions"),
    ("trust", ops_queries.trust, ops.TrustOut, "Abstain and unfamiliar rates per period"),
    ("grades", ops_queries.grades, ops.GradesOut, "Grade mix by category and SKU"),
    ("top-skus", ops_queries.top_skus, ops.TopSkusOut, "Top SKUs by return rate and damage"),
    ("recovery", ops_queries.recovery, ops.RecoveryOut, "Expected vs realised recovery"),
    (
        "sustainability",
        ops_queries.sustainability,
        ops.SustainabilityOut,
        "Items restocked, refurbished, donated, recycled",
    ),
    ("reviewers", ops_queries.reviewers, ops.ReviewersOut, "Workload, queue age, agreement"),
    ("fraud", ops_queries.fraud, ops.FraudOut, "Fraud flags per period, repeat returners"),
)


def _route(query: Callable[[ReturnLensService, OpsFilter], Any]) -> Callable[..., Any]:
    def chart(f: Filter, svc: ServiceDep) -> Any:
        return query(svc, f)

    chart.__name__ = f"ops_{query.__name__}"
    chart.__doc__ = query.__doc__
    return chart


for path, query, model, summary in CHARTS:
    router.add_api_route(
        f"/{path}",
        _route(query),
        methods=["GET"],
        response_model=model,
        responses=error_responses(401, 403, 422, 429),
        dependencies=[REVIEWER],
        summary=summary,
    )
