"""Who is calling: staff API keys (dock, reviewer, admin) and shopper tokens.

Credentials arrive as ``Authorization: Bearer <secret>`` or ``X-API-Key: <secret>``.

- **Staff keys** are checked by the service against the stored hashes
  (``admin.authenticate_key``); the plaintext exists only in the response that created it.
  ``admin`` passes every staff check; ``dock`` and ``reviewer`` pass only their own.
  Every request is checked against the database (nothing is cached in the process), so
  a revoked key stops working on the next request in every worker.
- **Photos.** Reviewers and admins read every photo. A dock key reads the photos of
  inspections and the shopper photos of returns a dock inspection was matched to, not
  every shopper photo by id. A shopper token reads its own return's photos.
  An optional bootstrap admin key from the settings (``RETURNLENS_ADMIN_KEY``) lets an
  operator create the first keys; it is compared by hash in constant time and never
  stored.
- **Shopper tokens** are scoped to one return: the service checks the token against the
  return's stored token hash. A shopper token is not an API key, so it opens no dock,
  review or admin endpoint (401), and another return's token opens nothing (403/401).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from serving.credentials import same_secret, secret_hash
from serving.domain_errors import Forbidden, NotFound, Unauthorized
from serving.services import admin, dock, media, shopper
from serving.services.service import ReturnLensService

Kind = Literal["shopper", "dock", "reviewer", "admin"]
STAFF_ROLES: tuple[str, ...] = ("dock", "reviewer", "admin")


@dataclass(frozen=True)
class Principal:
    kind: Kind
    name: str
    return_id: str | None = None  # shoppers only: the one return they may touch

    @property
    def is_staff(self) -> bool:
        return self.kind in STAFF_ROLES

    def allowed(self, roles: tuple[str, ...]) -> bool:
        return self.is_staff and (self.kind == "admin" or self.kind in roles)


def missing_credential() -> Unauthorized:
    return Unauthorized(
        "this endpoint needs a credential: send 'Authorization: Bearer "
        "<key or token>' or 'X-API-Key: <key>'",
        code="unauthorized",
    )


class Authenticator:
    """Turns a presented secret into a :class:`Principal` (or a 401/403 error)."""

    def __init__(self, service: ReturnLensService, *, admin_key: str | None = None) -> None:
        self.service = service
        self._admin_hash = secret_hash(admin_key) if admin_key else None

    def staff(self, credential: str) -> Principal | None:
        """The staff principal for an API key, or None when it is not a valid key."""
        if self._admin_hash is not None and same_secret(credential, self._admin_hash):
            return Principal(kind="admin", name="bootstrap-admin")
        found = admin.authenticate_key(self.service, credential)
        if found is None:
            return None
        name, role = found
        if role not in STAFF_ROLES:
            return None
        return Principal(kind=role, name=name)  # type: ignore[arg-type]

    def require_staff(self, credential: str | None, roles: tuple[str, ...]) -> Principal:
        if not credential:
            raise missing_credential()
        principal = self.staff(credential)
        if principal is None:
            raise Unauthorized(
                "the credential is not a valid API key for this endpoint", code="unauthorized"
            )
        if not principal.allowed(roles):
            raise Forbidden(
                f"a {principal.kind} key cannot use this endpoint (it needs {' or '.join(roles)})",
                code="forbidden",
                details={"role": principal.kind, "needs": list(roles)},
            )
        return principal

    def for_return(
        self,
        credential: str | None,
        return_id: str,
        *,
        staff_roles: tuple[str, ...] = ("reviewer",),
    ) -> Principal:
        """The shopper holding this return's token, or staff with one of ``staff_roles``
        (admin always). Any other credential is refused with the shopper check's error."""
        if not credential:
            raise missing_credential()
        try:
            shopper.check_shopper_token(self.service, return_id, credential)
        except (Unauthorized, Forbidden, NotFound) as refused:
            principal = self.staff(credential)
            if principal is None:
                raise
            if not principal.allowed(staff_roles):
                raise Forbidden(
                    f"a {principal.kind} key cannot use this endpoint", code="forbidden"
                ) from refused
            return principal
        return Principal(kind="shopper", name=f"shopper:{return_id}", return_id=return_id)

    def for_photo(self, credential: str | None, photo_id: str) -> Principal:
        """Reviewers and admins see every photo; a dock key the photos of inspections and
        of the returns a dock inspected; a shopper only the photos of their own return.
        An unknown photo id answers like a foreign one (403), so neither a shopper token
        nor a dock key can probe for ids."""
        if not credential:
            raise missing_credential()
        principal = self.staff(credential)
        if principal is not None:
            if principal.kind != "dock" or dock.dock_may_see_photo(self.service, photo_id):
                return principal
            raise Forbidden(
                "a dock key reads only the photos of inspections and of the returns "
                "a dock inspected",
                code="forbidden",
            )
        refused = Forbidden("this token does not give access to this photo", code="forbidden")
        try:
            kind, subject = media.photo_subject(self.service, photo_id)
        except NotFound:
            raise refused from None
        if kind != "return":
            raise refused
        shopper.check_shopper_token(self.service, subject, credential)
        return Principal(kind="shopper", name=f"shopper:{subject}", return_id=subject)
