"""Who is acting: roles and the agency scope every read and write is checked against."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from inspection_hub.errors import Forbidden


class Role(StrEnum):
    """The four official roles (see design section 2)."""

    admin = "admin"
    scheduler = "scheduler"
    approver = "approver"
    supervisor = "supervisor"


AGENCY_ROLES = frozenset({Role.scheduler, Role.approver})
GLOBAL_READ_ROLES = frozenset({Role.admin, Role.supervisor})


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller."""

    user_id: int
    username: str
    display_name: str
    role: Role
    agency_code: str | None
    token_id: int | None = None

    @property
    def sees_everything(self) -> bool:
        """Admins and supervisors read across agencies."""
        return self.role in GLOBAL_READ_ROLES

    def may_access_agency(self, agency_code: str | None) -> bool:
        """True when the caller may act on objects of this agency."""
        if self.sees_everything:
            return True
        return agency_code is not None and agency_code == self.agency_code

    def ensure_agency(self, agency_code: str | None) -> None:
        """Raise 403 unless the caller may act for this agency."""
        if not self.may_access_agency(agency_code):
            raise Forbidden(
                f"Role {self.role.value} of agency {self.agency_code} may not act on "
                f"objects of agency {agency_code}."
            )

    def ensure_any_agency(self, agency_codes: list[str] | set[str] | frozenset[str]) -> None:
        """Raise 403 unless the caller belongs to at least one of the agencies (joint objects)."""
        if self.sees_everything:
            return
        if self.agency_code not in agency_codes:
            raise Forbidden(
                f"Agency {self.agency_code} is not involved in this object; access refused."
            )
