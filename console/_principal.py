"""Who is signed in to the console: an officer of an agency, an operator, or a trader."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Role = Literal["officer", "supervisor", "operator", "trader"]
ROLES: Final[tuple[Role, ...]] = ("officer", "supervisor", "operator", "trader")
#: Roles an agency account may have (an operator belongs to no agency; a trader signs in with an API key).
AGENCY_ROLES: Final = frozenset({"officer", "supervisor"})


@dataclass(frozen=True, slots=True)
class Principal:
    """The signed-in user of one request, with the CSRF token its forms must carry."""

    kind: Literal["officer", "trader"]
    subject: str  # the officer's user name, or the trader
    role: Role
    agency: str | None
    display: str
    csrf: str

    @property
    def actor(self) -> str:
        """How the audit chain and decisions name this user: ``sps/alice``, ``operator/ops1``, ``trader/acme``."""
        return f"{self.agency or self.role}/{self.subject}"

    @property
    def is_agency_staff(self) -> bool:
        return self.kind == "officer" and self.agency is not None and self.role in AGENCY_ROLES

    @property
    def is_supervisor(self) -> bool:
        return self.is_agency_staff and self.role == "supervisor"

    @property
    def is_operator(self) -> bool:
        return self.kind == "officer" and self.role == "operator"

    def works_for(self, agency: str | None) -> bool:
        """Whether this user may see and act on ``agency``'s cases: staff of that very agency, nobody else (an
        operator or a trader never; an SPS officer never for customs)."""
        return self.is_agency_staff and agency is not None and self.agency == agency
