"""Conflict queries in SQLAlchemy Core: the facts the rules read, and idempotent finding writes.

Hot path (pre-check and detector): two indexed round trips per enterprise (enterprise + risk
history, then its inspections with matters and inspectors aggregated), plus one for inspector
bookings when the candidate is booked on one day.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from inspection_hub.conflicts.rules import EnterpriseFact, Finding, InspectionFact
from inspection_hub.policy import RISK_CLASSES, RiskClass

#: How far back the rules look (repeat windows, the previous inspector, the cap year).
HISTORY_YEARS = 3

_ENTERPRISE = text(
    """
    SELECT e.uscc, e.risk_class, e.established_on,
           (SELECT coalesce(array_agg(r.valid_from ORDER BY r.valid_from), '{}')
              FROM enterprise_risk_class r WHERE r.enterprise_uscc = e.uscc) AS since,
           (SELECT coalesce(array_agg(r.risk_class ORDER BY r.valid_from), '{}')
              FROM enterprise_risk_class r WHERE r.enterprise_uscc = e.uscc) AS classes
    FROM enterprise e WHERE e.uscc = CAST(:uscc AS bpchar)
    """
)

_FACT_COLUMNS = """
    i.id, i.enterprise_uscc, i.agency_code, i.premises_id, i.kind, i.basis, i.status,
    i.window_start, i.window_end, i.visit_date,
    (SELECT coalesce(array_agg(DISTINCT m.category), '{}') FROM inspection_matter m
      WHERE m.enterprise_uscc = i.enterprise_uscc AND m.inspection_id = i.id) AS categories,
    (SELECT coalesce(array_agg(ii.inspector_id), '{}') FROM inspection_inspector ii
      WHERE ii.enterprise_uscc = i.enterprise_uscc AND ii.inspection_id = i.id) AS inspectors,
    (SELECT coalesce(array_agg(DISTINCT m.agency_code), '{}') FROM inspection_matter m
      WHERE m.enterprise_uscc = i.enterprise_uscc AND m.inspection_id = i.id) AS agencies
"""

_HISTORY = text(
    f"""
    SELECT {_FACT_COLUMNS}
    FROM inspection i
    WHERE i.enterprise_uscc = CAST(:uscc AS bpchar) AND i.window_start >= :since
    ORDER BY i.id
    """
)

# Inspections of the given inspectors at other enterprises booked on one day (visit date, or a
# one-day window); the rules filter statuses and the day again.
_BOOKINGS = text(
    f"""
    SELECT {_FACT_COLUMNS}
    FROM inspection i
    WHERE (i.enterprise_uscc, i.id) IN (
        SELECT ii.enterprise_uscc, ii.inspection_id FROM inspection_inspector ii
        WHERE ii.inspector_id = ANY(CAST(:inspectors AS bigint[]))
          AND ii.enterprise_uscc <> CAST(:uscc AS bpchar))
      AND i.status IN ('scheduled', 'in_progress', 'completed')
      AND (i.visit_date = :day OR (i.visit_date IS NULL AND i.window_start = :day
                                   AND i.window_end = :day))
    """
)


def _fact(row: Any) -> InspectionFact:
    return InspectionFact(
        id=int(row.id),
        agency_code=row.agency_code,
        uscc=row.enterprise_uscc,
        premises_id=row.premises_id,
        categories=frozenset(row.categories),
        kind=row.kind,
        basis=row.basis,
        status=row.status,
        window_start=row.window_start,
        window_end=row.window_end,
        visit_date=row.visit_date,
        inspector_ids=frozenset(int(i) for i in row.inspectors),
    )


def _risk(value: str) -> RiskClass:
    for rc in RISK_CLASSES:
        if rc == value:
            return rc
    raise ValueError(f"unknown risk class {value!r}")


async def load_enterprise_fact(session: AsyncSession, uscc: str) -> EnterpriseFact | None:
    """The enterprise as the rules see it (risk class history, founding date), or None."""
    row = (await session.execute(_ENTERPRISE, {"uscc": uscc})).one_or_none()
    if row is None:
        return None
    history = tuple(zip(row.since, (_risk(c) for c in row.classes), strict=True))
    if not history:
        history = ((date(1900, 1, 1), _risk(row.risk_class)),)
    return EnterpriseFact(uscc=row.uscc, risk_classes=history, established_on=row.established_on)


async def load_history(
    session: AsyncSession, uscc: str, since: date
) -> tuple[list[InspectionFact], dict[int, frozenset[str]]]:
    """The enterprise's inspections with a window starting on or after ``since``, any status.

    Also returns every inspection's agencies (its lead agency and its matters' agencies).
    """
    rows = (await session.execute(_HISTORY, {"uscc": uscc, "since": since})).all()
    agencies = {int(r.id): frozenset({r.agency_code, *r.agencies}) for r in rows}
    return [_fact(r) for r in rows], agencies


def history_start(year: int) -> date:
    """First day the rules look at for a candidate in ``year``."""
    return date(year - HISTORY_YEARS, 1, 1)


async def load_enterprise_facts(
    session: AsyncSession, uscc: str, year: int
) -> tuple[EnterpriseFact, list[InspectionFact]]:
    """The enterprise and its inspections as the rules see them (pre-check and detector)."""
    enterprise = await load_enterprise_fact(session, uscc)
    if enterprise is None:
        from inspection_hub.errors import NotFound

        raise NotFound(f"Enterprise {uscc} is not registered.")
    facts, _ = await load_history(session, uscc, history_start(year))
    return enterprise, facts


async def load_bookings(session: AsyncSession, candidate: InspectionFact) -> list[InspectionFact]:
    """Inspections of the candidate's inspectors at other enterprises on its booked day."""
    day = candidate.booked_day
    if day is None or not candidate.inspector_ids:
        return []
    rows = (
        await session.execute(
            _BOOKINGS,
            {"inspectors": sorted(candidate.inspector_ids), "uscc": candidate.uscc, "day": day},
        )
    ).all()
    return [_fact(r) for r in rows]


# -- findings -------------------------------------------------------------------------------

_INSERT_FINDING = text(
    """
    INSERT INTO conflict (enterprise_uscc, kind, status, finding_key, inspection_ids,
                          agency_codes, detail, lead_agency, policy_version)
    VALUES (:uscc, :kind, 'open', :key, CAST(:ids AS bigint[]), CAST(:agencies AS varchar[]),
            CAST(:detail AS jsonb), :lead, :policy)
    ON CONFLICT (enterprise_uscc, finding_key) DO NOTHING
    RETURNING id
    """
)


def _detail_json(detail: dict[str, Any]) -> str:
    return json.dumps(detail, ensure_ascii=False, default=str, sort_keys=True)


async def insert_finding(
    session: AsyncSession, finding: Finding, agencies: Sequence[str], *, key: str | None = None
) -> int | None:
    """Insert a finding unless its key is already recorded; the new id, or None if it was."""
    result = await session.execute(
        _INSERT_FINDING,
        {
            "uscc": finding.enterprise,
            "kind": finding.kind,
            "key": key or finding.key,
            "ids": sorted(finding.inspection_ids),
            "agencies": sorted(set(agencies)),
            "detail": _detail_json(finding.detail),
            "lead": finding.lead_agency,
            "policy": finding.policy_version,
        },
    )
    value = result.scalar_one_or_none()
    return int(value) if value is not None else None


async def open_mergeable(session: AsyncSession, uscc: str) -> dict[int, frozenset[int]]:
    """Open mergeable findings of an enterprise: conflict id -> inspection ids."""
    rows = (
        await session.execute(
            text(
                "SELECT id, inspection_ids FROM conflict WHERE "
                "enterprise_uscc = CAST(:uscc AS bpchar) "
                "AND kind = 'mergeable' AND status = 'open'"
            ),
            {"uscc": uscc},
        )
    ).all()
    return {int(r.id): frozenset(int(i) for i in r.inspection_ids) for r in rows}


async def grow_mergeable(
    session: AsyncSession, uscc: str, conflict_id: int, finding: Finding, agencies: Sequence[str]
) -> None:
    """Rewrite an open mergeable finding to the new group (ids, key, agencies, detail)."""
    await session.execute(
        text(
            """
            UPDATE conflict SET finding_key = :key, inspection_ids = CAST(:ids AS bigint[]),
                   agency_codes = CAST(:agencies AS varchar[]), detail = CAST(:detail AS jsonb),
                   lead_agency = :lead, policy_version = :policy, updated_at = now(),
                   version = version + 1
            WHERE enterprise_uscc = CAST(:uscc AS bpchar) AND id = :id AND status = 'open'
            """
        ),
        {
            "uscc": uscc,
            "id": conflict_id,
            "key": finding.key,
            "ids": sorted(finding.inspection_ids),
            "agencies": sorted(set(agencies)),
            "detail": _detail_json(finding.detail),
            "lead": finding.lead_agency,
            "policy": finding.policy_version,
        },
    )


async def resolve_system(
    session: AsyncSession, uscc: str, conflict_ids: Iterable[int], resolution: str, note: str
) -> list[int]:
    """Resolve open findings on the system's behalf; the ids actually resolved."""
    ids = sorted(set(conflict_ids))
    if not ids:
        return []
    rows = (
        await session.execute(
            text(
                """
                UPDATE conflict SET status = 'resolved', resolution = :resolution,
                       resolution_note = :note, resolved_by_name = 'system',
                       resolved_at = now(), updated_at = now(), version = version + 1
                WHERE enterprise_uscc = CAST(:uscc AS bpchar) AND id = ANY(CAST(:ids AS bigint[]))
                  AND status = 'open'
                RETURNING id
                """
            ),
            {"uscc": uscc, "ids": ids, "resolution": resolution, "note": note},
        )
    ).scalars()
    return sorted(int(i) for i in rows)
