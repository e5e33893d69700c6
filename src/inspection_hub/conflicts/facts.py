"""Loading the plain facts the conflict rules run on, in a few set-based Core queries.

Shared by the check-request pre-check (approvals/precheck.py) and the event-driven detector.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, cast

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from inspection_hub.conflicts.rules import EnterpriseFact, InspectionFact, InspectionStatus
from inspection_hub.policy import RiskClass

# Facts are loaded for inspections whose dates come within this many days of the year, so that
# repeat windows (default 180 days) and merge windows reaching across New Year are seen.
LOOKAROUND_DAYS = 366
# Planned windows are never longer than a year: a lower bound on window_start lets the
# (enterprise_uscc, window_start) index do the work.
MAX_WINDOW_DAYS = 366


@dataclass(frozen=True, slots=True)
class InspectionRow:
    """An inspection as loaded, with what the facts leave out (matters, outcome)."""

    fact: InspectionFact
    matters: tuple[str, ...]
    outcome: str | None
    check_request_id: int | None
    emergency: bool


@dataclass(frozen=True, slots=True)
class EnterpriseFacts:
    """Everything the rules need about one enterprise, plus the rows for presentation."""

    enterprise: EnterpriseFact
    inspections: list[InspectionRow]
    requests: list[InspectionFact]

    @property
    def facts(self) -> list[InspectionFact]:
        """Inspections and pending (non-emergency) requests, as rule facts."""
        return [r.fact for r in self.inspections] + self.requests


_ENTERPRISE = text(
    """
    SELECT e.uscc, e.established_on,
           coalesce((SELECT array_agg(r.valid_from ORDER BY r.valid_from)
                     FROM enterprise_risk_class r WHERE r.enterprise_uscc = e.uscc), '{}')
               AS valid_from,
           coalesce((SELECT array_agg(r.risk_class::text ORDER BY r.valid_from)
                     FROM enterprise_risk_class r WHERE r.enterprise_uscc = e.uscc), '{}')
               AS risk_classes,
           e.risk_class
    FROM enterprise e WHERE e.uscc = :uscc
    """
)

_INSPECTIONS = text(
    """
    SELECT i.id, i.agency_code, i.premises_id, i.kind, i.basis, i.status,
           i.window_start, i.window_end, i.visit_date, i.outcome, i.check_request_id,
           i.emergency,
           coalesce(m.matters, '{}') AS matters,
           coalesce(m.categories, '{}') AS categories,
           coalesce(p.inspector_ids, '{}') AS inspector_ids
    FROM inspection i
    LEFT JOIN LATERAL (
        SELECT array_agg(im.matter_code::text ORDER BY im.matter_code) AS matters,
               array_agg(DISTINCT im.category::text) AS categories
        FROM inspection_matter im
        WHERE im.enterprise_uscc = i.enterprise_uscc AND im.inspection_id = i.id
    ) m ON true
    LEFT JOIN LATERAL (
        SELECT array_agg(ii.inspector_id) AS inspector_ids
        FROM inspection_inspector ii
        WHERE ii.enterprise_uscc = i.enterprise_uscc AND ii.inspection_id = i.id
    ) p ON true
    WHERE i.enterprise_uscc = :uscc
      AND i.window_start >= :start_floor AND i.window_start <= :hi
      AND coalesce(i.visit_date, i.window_end) >= :lo
    ORDER BY i.id
    """
)

# Pending requests whose inspection does not exist yet (emergencies already have one).
_REQUESTS = text(
    """
    SELECT c.id, c.agency_code, c.basis, c.window_start, c.window_end,
           coalesce((SELECT array_agg(DISTINCT mt.category::text) FROM matter mt
                     WHERE mt.code = ANY(c.matters)), '{}') AS categories
    FROM check_request c
    WHERE c.enterprise_uscc = :uscc AND c.status = 'pending' AND NOT c.emergency
      AND c.window_start >= :start_floor AND c.window_start <= :hi AND c.window_end >= :lo
    ORDER BY c.id
    """
)


def _bounds(year: int) -> dict[str, date]:
    lo = date(year, 1, 1) - timedelta(days=LOOKAROUND_DAYS)
    hi = date(year, 12, 31) + timedelta(days=LOOKAROUND_DAYS)
    return {"lo": lo, "hi": hi, "start_floor": lo - timedelta(days=MAX_WINDOW_DAYS)}


async def load_enterprise(session: AsyncSession, uscc: str) -> EnterpriseFact | None:
    """The enterprise as a rule fact (risk class history, founding date), or None if unknown."""
    row = (await session.execute(_ENTERPRISE, {"uscc": uscc})).first()
    if row is None:
        return None
    history = list(zip(row.valid_from, row.risk_classes, strict=True))
    if not history:  # no history recorded: the current class has always held
        history = [(date(1900, 1, 1), row.risk_class)]
    return EnterpriseFact(
        uscc=row.uscc,
        risk_classes=tuple((since, cast(RiskClass, cls)) for since, cls in history),
        established_on=row.established_on,
    )


def inspection_fact(row: Any, uscc: str) -> InspectionFact:
    """One inspection row (as selected by `_INSPECTIONS`) as a rule fact."""
    return InspectionFact(
        id=int(row.id),
        agency_code=row.agency_code,
        uscc=uscc,
        premises_id=row.premises_id,
        categories=frozenset(row.categories),
        kind=row.kind,
        basis=row.basis,
        status=cast(InspectionStatus, row.status),
        window_start=row.window_start,
        window_end=row.window_end,
        visit_date=row.visit_date,
        inspector_ids=frozenset(int(i) for i in row.inspector_ids),
    )


def request_fact(
    request_id: int,
    *,
    agency_code: str,
    uscc: str,
    categories: frozenset[str],
    basis: str | None,
    window_start: date,
    window_end: date,
) -> InspectionFact:
    """A pending check request as a rule fact: id is minus the request id, status pending."""
    return InspectionFact(
        id=-request_id,
        agency_code=agency_code,
        uscc=uscc,
        premises_id=None,
        categories=categories,
        kind="unplanned",
        basis=basis,
        status="pending_request",
        window_start=window_start,
        window_end=window_end,
        is_request=True,
    )


async def load_enterprise_rows(
    session: AsyncSession, uscc: str, year: int
) -> EnterpriseFacts | None:
    """The enterprise, its inspections near `year` and its pending requests; None if unknown."""
    enterprise = await load_enterprise(session, uscc)
    if enterprise is None:
        return None
    params: dict[str, Any] = {"uscc": uscc, **_bounds(year)}
    rows = [
        InspectionRow(
            fact=inspection_fact(r, uscc),
            matters=tuple(r.matters),
            outcome=r.outcome,
            check_request_id=r.check_request_id,
            emergency=bool(r.emergency),
        )
        for r in (await session.execute(_INSPECTIONS, params))
    ]
    requests = [
        request_fact(
            int(r.id),
            agency_code=r.agency_code,
            uscc=uscc,
            categories=frozenset(r.categories),
            basis=r.basis,
            window_start=r.window_start,
            window_end=r.window_end,
        )
        for r in (await session.execute(_REQUESTS, params))
    ]
    return EnterpriseFacts(enterprise, rows, requests)


async def load_enterprise_facts(
    session: AsyncSession, uscc: str, year: int
) -> tuple[EnterpriseFact, list[InspectionFact]]:
    """The enterprise fact and the rule facts of its inspections and pending requests.

    Inspections of any agency and any status whose dates come within 366 days of `year` (so
    repeat and merge windows across New Year are seen), plus pending non-emergency check requests
    as `pending_request` facts with id = -request_id. Raises LookupError for an unknown uscc.
    """
    loaded = await load_enterprise_rows(session, uscc, year)
    if loaded is None:
        raise LookupError(f"enterprise {uscc} is not registered")
    return loaded.enterprise, loaded.facts
