"""Conflict queries in SQLAlchemy Core: the facts the rules read, and idempotent finding writes.

Hot path (pre-check and detector): two indexed round trips per enterprise (enterprise + risk
history, then its inspections with matters and inspectors aggregated), plus one for inspector
bookings when the candidate is booked on one day.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from inspection_hub.conflicts.rules import EnterpriseFact, Finding, InspectionFact
from inspection_hub.policy import RISK_CLASSES, RiskClass

#: How far back the rules look (repeat windows, the previous inspector, the cap year).
HISTORY_YEARS = 3

# One round trip for everything the rules read about one enterprise: the SQL function
# conflict_facts (migration 0005_conflicts, where the query and its indexes are described).
_FACTS_SQL = (
    "SELECT * FROM conflict_facts($1::bpchar, $2::date, $3::bigint[], $4::boolean, "
    "$5::bigint[], $6::date, $7::text, $8::text)"
)


@dataclass(frozen=True, slots=True)
class EnterpriseFacts:
    """One enterprise as the rules see it: itself, its history, and its candidates' bookings."""

    enterprise: EnterpriseFact
    history: list[InspectionFact]
    #: Every history inspection's agencies (its lead agency and its matters' agencies).
    agencies: dict[int, frozenset[str]]
    #: Inspections at other enterprises sharing an inspector on a candidate's booked day.
    bookings: list[InspectionFact]


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value is not None else None


def _json_fact(row: dict[str, Any], uscc: str) -> InspectionFact:
    return InspectionFact(
        id=int(row["id"]),
        agency_code=row["agency_code"],
        uscc=row.get("enterprise_uscc") or uscc,
        premises_id=row["premises_id"],
        categories=frozenset(row["categories"]),
        kind=row["kind"],
        basis=row["basis"],
        status=row["status"],
        window_start=date.fromisoformat(row["window_start"]),
        window_end=date.fromisoformat(row["window_end"]),
        visit_date=_day(row["visit_date"]),
        inspector_ids=frozenset(int(i) for i in row["inspectors"]),
    )


def _risk(value: str) -> RiskClass:
    for rc in RISK_CLASSES:
        if rc == value:
            return rc
    raise ValueError(f"unknown risk class {value!r}")


async def load_facts(
    session: AsyncSession,
    uscc: str,
    since: date,
    *,
    candidate_ids: Iterable[int] = (),
    all_live: bool = False,
    probe: InspectionFact | None = None,
    lock_namespace: str | None = None,
) -> EnterpriseFacts | None:
    """The enterprise, its inspections since ``since`` and the candidates' bookings; one query.

    Candidates whose bookings are loaded: the inspections ``candidate_ids`` (of this enterprise,
    within the history), every live one when ``all_live``, and ``probe`` (a candidate not stored
    yet, e.g. a check request: its inspectors on its booked day). None if the enterprise is unknown.
    With ``lock_namespace``, first takes the advisory lock ``xact_lock(session, lock_namespace,
    uscc)`` would, and reads the facts after it is granted (same round trip).
    """
    day = probe.booked_day if probe is not None else None
    inspectors = sorted(probe.inspector_ids) if probe is not None and day is not None else []
    # Through the session's connection (not the bare driver), so the transaction is begun
    # first and the lock is held to its end; a driver-level SQL string, no ORM, no compiling.
    conn = await session.connection()
    result = await conn.exec_driver_sql(
        _FACTS_SQL,
        (
            uscc,
            since,
            sorted(set(candidate_ids)),
            all_live,
            inspectors,
            day if inspectors else None,
            lock_namespace,
            uscc if lock_namespace is not None else None,
        ),
    )
    row = result.mappings().one_or_none()
    if row is None:
        return None
    history_rows: list[dict[str, Any]] = json.loads(row["history"] or "[]")
    history = [_json_fact(r, row["uscc"]) for r in history_rows]
    agencies = {int(r["id"]): frozenset({r["agency_code"], *r["agencies"]}) for r in history_rows}
    bookings = [_json_fact(r, row["uscc"]) for r in json.loads(row["bookings"] or "[]")]
    risk = tuple(zip(row["since"], (_risk(c) for c in row["classes"]), strict=True))
    if not risk:
        risk = ((date(1900, 1, 1), _risk(row["risk_class"])),)
    enterprise = EnterpriseFact(
        uscc=row["uscc"], risk_classes=risk, established_on=row["established_on"]
    )
    return EnterpriseFacts(enterprise, history, agencies, bookings)


async def load_enterprise_fact(session: AsyncSession, uscc: str) -> EnterpriseFact | None:
    """The enterprise as the rules see it (risk class history, founding date), or None."""
    loaded = await load_facts(session, uscc, date.max)
    return loaded.enterprise if loaded is not None else None


async def load_history(
    session: AsyncSession, uscc: str, since: date
) -> tuple[list[InspectionFact], dict[int, frozenset[str]]]:
    """The enterprise's inspections with a window starting on or after ``since``, any status.

    Also returns every inspection's agencies (its lead agency and its matters' agencies).
    """
    loaded = await load_facts(session, uscc, since)
    if loaded is None:
        return [], {}
    return loaded.history, loaded.agencies


def history_start(year: int) -> date:
    """First day the rules look at for a candidate in ``year``."""
    return date(year - HISTORY_YEARS, 1, 1)


async def load_enterprise_facts(
    session: AsyncSession, uscc: str, year: int
) -> tuple[EnterpriseFact, list[InspectionFact]]:
    """The enterprise and its inspections as the rules see them (pre-check and detector)."""
    loaded = await load_facts(session, uscc, history_start(year))
    if loaded is None:
        from inspection_hub.errors import NotFound

        raise NotFound(f"Enterprise {uscc} is not registered.")
    return loaded.enterprise, loaded.history


async def load_bookings(session: AsyncSession, candidate: InspectionFact) -> list[InspectionFact]:
    """Inspections of the candidate's inspectors at other enterprises on its booked day."""
    if candidate.booked_day is None or not candidate.inspector_ids:
        return []
    loaded = await load_facts(session, candidate.uscc, date.max, probe=candidate)
    return loaded.bookings if loaded is not None else []


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
