"""FastAPI dependencies: the service, the settings, metrics and the caller's principal.

Everything the routers need comes through ``Annotated[..., Depends(...)]`` aliases, so a
route's signature says what it needs (``svc: ServiceDep, who: AdminDep``); a route that
only needs the check and not the caller lists it in ``dependencies=[...]`` instead
(``REVIEWER``, ``RETURN_READER``, ...). The credential schemes are declared with
FastAPI's security classes so ``/docs`` offers an "Authorize" button for both header
forms; the credential itself is read by ``serving.credentials.credential_of``, the
parser the rate limiter uses too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.params import Depends as DependsParam
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from serving.api.admission import UploadAdmission, UploadSlots, declared_size
from serving.auth import Authenticator, Principal
from serving.credentials import credential_of
from serving.errors import ServiceUnavailable
from serving.metrics import Metrics
from serving.services.service import ReturnLensService
from serving.settings import Settings

# The getters below are ``async def``: they only read the app's state or the headers, and
# FastAPI runs a plain ``def`` dependency on a worker thread. Every upload resolved six of
# them that way, six hand-offs to a thread and back (the event loop woken each time) for
# nothing. The ones that read the database (the principals below) stay plain functions.
bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="A staff API key (dock, reviewer, admin) or a shopper's return token.",
)
api_key_scheme = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    scheme_name="apiKey",
    description="A staff API key (alternative header).",
)


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


async def get_service(request: Request) -> ReturnLensService:
    service: ReturnLensService | None = getattr(request.app.state, "service", None)
    if service is None or not request.app.state.ready:
        raise ServiceUnavailable(
            "the service is starting up (model or database not ready); retry shortly",
            code="not_ready",
        )
    return service


async def get_authenticator(
    request: Request, _svc: Annotated[ReturnLensService, Depends(get_service)]
) -> Authenticator:
    auth: Authenticator = request.app.state.authenticator
    return auth


async def get_upload_slots(request: Request) -> UploadSlots:
    slots: UploadSlots = request.app.state.upload_slots
    return slots


async def upload_admission(
    request: Request, settings: Annotated[Settings, Depends(get_settings)]
) -> AsyncIterator[None]:
    """Room for this upload's bytes before its body is read (serving/api/admission.py)."""
    admission: UploadAdmission = request.app.state.upload_admission
    async with admission.admit(declared_size(request, settings.max_request_bytes())):
        yield


async def get_credential(
    request: Request,
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    _api_key: Annotated[str | None, Depends(api_key_scheme)],
) -> str | None:
    """The schemes only document the headers in OpenAPI; the one parser reads them."""
    return credential_of(request.headers)


SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
ServiceDep = Annotated[ReturnLensService, Depends(get_service)]
AuthDep = Annotated[Authenticator, Depends(get_authenticator)]
CredentialDep = Annotated[str | None, Depends(get_credential)]
SlotsDep = Annotated[UploadSlots, Depends(get_upload_slots)]
AdmissionDep = Annotated[None, Depends(upload_admission)]


def _role_dependency(*roles: str) -> Callable[[Authenticator, str | None], Principal]:
    def require(auth: AuthDep, credential: CredentialDep) -> Principal:
        return auth.require_staff(credential, roles)

    require.__name__ = f"require_{'_'.join(roles)}"
    return require


DOCK: DependsParam = Depends(_role_dependency("dock"))
REVIEWER: DependsParam = Depends(_role_dependency("reviewer"))
ADMIN: DependsParam = Depends(_role_dependency("admin"))
DOCK_OR_REVIEWER: DependsParam = Depends(_role_dependency("dock", "reviewer"))
DockDep = Annotated[Principal, DOCK]
ReviewerDep = Annotated[Principal, REVIEWER]
AdminDep = Annotated[Principal, ADMIN]


def return_principal(return_id: str, auth: AuthDep, credential: CredentialDep) -> Principal:
    """The return's shopper, or a reviewer/admin (read access to any return)."""
    return auth.for_return(credential, return_id, staff_roles=("reviewer",))


def return_owner(return_id: str, auth: AuthDep, credential: CredentialDep) -> Principal:
    """Only the return's shopper (uploads are the shopper's act; admin may too)."""
    return auth.for_return(credential, return_id, staff_roles=())


RETURN_READER: DependsParam = Depends(return_principal)
RETURN_OWNER: DependsParam = Depends(return_owner)


def photo_reader(photo_id: str, auth: AuthDep, credential: CredentialDep) -> Principal:
    """Staff, or the shopper of the photo's return."""
    return auth.for_photo(credential, photo_id)


PHOTO_READER: DependsParam = Depends(photo_reader)
