"""Web pages served by the API process: the shopper return page and the reviewer console.

``router`` carries ``/`` (shopper page), ``/review`` (reviewer console), ``/static/...``
(their assets, all local) and ``POST /v1/orders/lookup`` (the order's items for the
shopper page). ``create_app`` mounts it with ``app.include_router(router)``.
"""

from __future__ import annotations

from fastapi import APIRouter

from serving.web import api_lookup, pages

router = APIRouter()
router.include_router(pages.router)
router.include_router(api_lookup.router)

__all__ = ["router"]
