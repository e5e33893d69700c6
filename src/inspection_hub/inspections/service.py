"""Creating inspections (shared by draws, approvals and joint inspections) and their codes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import exists, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from inspection_hub.agencies.models import Agency, Inspector, Matter
from inspection_hub.audit.service import record
from inspection_hub.auth.principal import Principal
from inspection_hub.db.deps import DriverConnection
from inspection_hub.db.session import driver_connection
from inspection_hub.enterprises.models import Enterprise
from inspection_hub.errors import (
    AppError,
    Conflict,
    Gone,
    NotFound,
    PreconditionFailed,
    ValidationFailed,
)
from inspection_hub.events import types as ev
from inspection_hub.events.outbox import emit
from inspection_hub.inspections.codes import CodeClaims, CodeExpired, CodeForged, CodeKeyring
from inspection_hub.inspections.models import (
    Inspection,
    InspectionInspector,
    InspectionMatter,
    booked_day,
)
from inspection_hub.inspections.schemas import (
    CodeInspector,
    CodeLookup,
    InspectionComplete,
    InspectionRead,
    InspectorRef,
    MatterRef,
    PublicInspection,
    ScanResult,
)
from inspection_hub.inspections.state import InspectionStatus, next_status
from inspection_hub.kit.pagination import MAX_LIMIT, decode_cursor, encode_cursor
from inspection_hub.kit.timeutil import local_today, utcnow


@lru_cache
def get_keyring(keys_dir: Path) -> CodeKeyring:
    """The inspection-code keyring kept in `keys_dir` (created on first use)."""
    return CodeKeyring.load_or_create(keys_dir)


def keyring_for(data_dir: Path) -> CodeKeyring:
    """The keyring of a data directory (`<data_dir>/code-keys`)."""
    return get_keyring(data_dir.resolve() / "code-keys")


def scheduled_payload(
    inspection: Inspection, matters: Sequence[Matter], inspector_ids: Sequence[int]
) -> dict[str, Any]:
    """The `inspection.scheduled` payload (see docs/events.md)."""
    return {
        "inspection_id": inspection.id,
        "enterprise": inspection.enterprise_uscc,
        "agency": inspection.agency_code,
        "agencies": sorted({m.agency_code for m in matters}),
        "kind": inspection.kind,
        "basis": inspection.basis,
        "emergency": inspection.emergency,
        "matters": [m.code for m in matters],
        "categories": sorted({m.category for m in matters}),
        "window_start": inspection.window_start.isoformat(),
        "window_end": inspection.window_end.isoformat(),
        "inspectors": list(inspector_ids),
        "plan_id": inspection.plan_id,
        "check_request_id": inspection.check_request_id,
    }


async def load_matters(session: AsyncSession, codes: Sequence[str]) -> list[Matter]:
    """The matters by code, or a 422 naming every unknown one."""
    rows = (await session.execute(select(Matter).where(Matter.code.in_(list(codes))))).scalars()
    found = {m.code: m for m in rows}
    missing = [c for c in codes if c not in found]
    if missing:
        raise ValidationFailed(
            "Unknown matter(s): " + ", ".join(missing),
            errors=[{"field": "matters", "detail": f"unknown matter {c}"} for c in missing],
        )
    return [found[c] for c in codes]


async def create_inspection(
    session: AsyncSession,
    actor: Principal | None,
    *,
    keyring: CodeKeyring,
    enterprise_uscc: str,
    agency_code: str,
    kind: str,
    matter_codes: Sequence[str],
    window_start: date,
    window_end: date,
    inspector_ids: Sequence[int] = (),
    offsite: bool = False,
    plan_id: int | None = None,
    plan_item_id: int | None = None,
    draw_id: int | None = None,
    check_request_id: int | None = None,
    basis: str | None = None,
    emergency: bool = False,
) -> Inspection:
    """Schedule one inspection with its matters, inspectors and signed inspection code.

    Writes the audit row and the `inspection.scheduled` event in the caller's transaction.
    """
    matters = await load_matters(session, matter_codes)
    if inspector_ids:
        known = set(
            (
                await session.execute(
                    select(Inspector.id).where(Inspector.id.in_(list(inspector_ids)))
                )
            ).scalars()
        )
        missing = [i for i in inspector_ids if i not in known]
        if missing:
            raise NotFound(f"Unknown inspector(s): {missing}")
    inspection = Inspection(
        enterprise_uscc=enterprise_uscc,
        kind=kind,
        status=InspectionStatus.scheduled.value,
        agency_code=agency_code,
        year=window_start.year,
        window_start=window_start,
        window_end=window_end,
        offsite=offsite,
        plan_id=plan_id,
        plan_item_id=plan_item_id,
        draw_id=draw_id,
        check_request_id=check_request_id,
        basis=basis,
        emergency=emergency,
        version=1,
    )
    session.add(inspection)
    await session.flush()
    inspection.code = keyring.issue(
        inspection_id=inspection.id,
        agency_code=agency_code,
        uscc=enterprise_uscc,
        window_start=window_start,
        window_end=window_end,
    )
    for m in matters:
        session.add(
            InspectionMatter(
                enterprise_uscc=enterprise_uscc,
                inspection_id=inspection.id,
                matter_code=m.code,
                agency_code=m.agency_code,
                category=m.category,
            )
        )
    day = booked_day(window_start, window_end, None)
    for inspector_id in inspector_ids:
        session.add(
            InspectionInspector(
                enterprise_uscc=enterprise_uscc,
                inspection_id=inspection.id,
                inspector_id=inspector_id,
                booked_day=day,
            )
        )
    await session.flush()
    payload = scheduled_payload(inspection, matters, inspector_ids)
    await record(session, actor, "inspection.schedule", "inspection", inspection.id, after=payload)
    await emit(
        session,
        ev.INSPECTION_SCHEDULED,
        inspection.id,
        payload,
        enterprise_uscc=enterprise_uscc,
        agency_codes=payload["agencies"],
    )
    return inspection


async def create_inspections_bulk(
    session: AsyncSession,
    actor: Principal | None,
    *,
    keyring: CodeKeyring,
    agency_code: str,
    kind: str,
    matter_codes: Sequence[str],
    window_start: date,
    window_end: date,
    assignments: Sequence[tuple[str, Sequence[int]]],
    offsite: bool = False,
    plan_id: int | None = None,
    plan_item_id: int | None = None,
    draw_id: int | None = None,
) -> list[int]:
    """Schedule one inspection per (uscc, inspector ids) pair, set-based (COPY), for draws.

    Same rows, codes and `inspection.scheduled` events as `create_inspection`, one per
    inspection; the audit trail gets one row for the whole batch (object: the draw or plan item).
    Returns the new inspection ids in the order of `assignments`.
    """
    if not assignments:
        return []
    matters = await load_matters(session, matter_codes)
    raw: Any = await driver_connection(session)
    ids = [
        int(r[0])
        for r in await raw.fetch(
            "SELECT nextval('inspection_id_seq') FROM generate_series(1, $1::int)",
            len(assignments),
        )
    ]
    issued_at = utcnow()
    agencies = sorted({m.agency_code for m in matters})
    inspection_rows: list[tuple[Any, ...]] = []
    matter_rows: list[tuple[Any, ...]] = []
    inspector_rows: list[tuple[Any, ...]] = []
    event_rows: list[tuple[Any, ...]] = []
    template = {
        "enterprise": "",
        "agency": agency_code,
        "agencies": agencies,
        "kind": kind,
        "basis": None,
        "emergency": False,
        "matters": [m.code for m in matters],
        "categories": sorted({m.category for m in matters}),
        "window_start": window_start.isoformat(),
        "window_end": window_end.isoformat(),
        "inspectors": [],
        "plan_id": plan_id,
        "check_request_id": None,
    }
    et = ev.INSPECTION_SCHEDULED
    day = booked_day(window_start, window_end, None)
    for inspection_id, (uscc, inspector_ids) in zip(ids, assignments, strict=True):
        code = keyring.issue(
            inspection_id=inspection_id,
            agency_code=agency_code,
            uscc=uscc,
            window_start=window_start,
            window_end=window_end,
            issued_at=issued_at,
        )
        inspection_rows.append(
            (
                uscc,
                inspection_id,
                kind,
                InspectionStatus.scheduled.value,
                agency_code,
                window_start.year,
                window_start,
                window_end,
                offsite,
                plan_id,
                plan_item_id,
                draw_id,
                code,
            )
        )
        matter_rows.extend(
            (uscc, inspection_id, m.code, m.agency_code, m.category) for m in matters
        )
        inspector_rows.extend((uscc, inspection_id, i, day) for i in inspector_ids)
        payload = {
            "inspection_id": inspection_id,
            **template,
            "enterprise": uscc,
            "inspectors": list(inspector_ids),
        }
        event_rows.append(
            (
                et.name,
                et.version,
                et.aggregate,
                str(inspection_id),
                1,
                uscc,
                agencies,
                json.dumps(payload, ensure_ascii=False, default=str),
            )
        )
    await raw.copy_records_to_table(
        "inspection",
        records=inspection_rows,
        columns=[
            "enterprise_uscc",
            "id",
            "kind",
            "status",
            "agency_code",
            "year",
            "window_start",
            "window_end",
            "offsite",
            "plan_id",
            "plan_item_id",
            "draw_id",
            "code",
        ],
    )
    await raw.copy_records_to_table(
        "inspection_matter",
        records=matter_rows,
        columns=["enterprise_uscc", "inspection_id", "matter_code", "agency_code", "category"],
    )
    if inspector_rows:
        await raw.copy_records_to_table(
            "inspection_inspector",
            records=inspector_rows,
            columns=["enterprise_uscc", "inspection_id", "inspector_id", "booked_day"],
        )
    await raw.copy_records_to_table(
        "event",
        records=event_rows,
        columns=[
            "type",
            "type_version",
            "aggregate_type",
            "aggregate_id",
            "aggregate_seq",
            "enterprise_uscc",
            "agency_codes",
            "payload",
        ],
    )  # the event_notify trigger wakes the workers (COPY fires statement triggers)
    await record(
        session,
        actor,
        "inspection.schedule_bulk",
        "draw" if draw_id is not None else "plan_item",
        draw_id if draw_id is not None else (plan_item_id or 0),
        after={
            "count": len(ids),
            "first_id": ids[0],
            "last_id": ids[-1],
            "kind": kind,
            "agency": agency_code,
            "matters": [m.code for m in matters],
            "window_start": window_start.isoformat(),
            "window_end": window_end.isoformat(),
            "plan_id": plan_id,
            "plan_item_id": plan_item_id,
        },
    )
    return ids


# --- reading ---------------------------------------------------------------------------------


def code_url(base_url: str, code: str | None) -> str | None:
    """The URL an inspection code's QR encodes: the code page an enterprise opens at the door."""
    if code is None:
        return None
    return f"{base_url.rstrip('/')}/c/{code}"


async def _details(
    session: AsyncSession, inspections: Sequence[Inspection]
) -> tuple[
    dict[int, list[InspectionMatter]], dict[int, list[tuple[InspectionInspector, Inspector]]]
]:
    ids = [i.id for i in inspections]
    usccs = list({i.enterprise_uscc for i in inspections})
    matters: dict[int, list[InspectionMatter]] = {i: [] for i in ids}
    people: dict[int, list[tuple[InspectionInspector, Inspector]]] = {i: [] for i in ids}
    if not ids:
        return matters, people
    for m in (
        await session.execute(
            select(InspectionMatter)
            .where(
                InspectionMatter.enterprise_uscc.in_(usccs),
                InspectionMatter.inspection_id.in_(ids),
            )
            .order_by(InspectionMatter.matter_code)
        )
    ).scalars():
        matters[m.inspection_id].append(m)
    rows = await session.execute(
        select(InspectionInspector, Inspector)
        .join(Inspector, Inspector.id == InspectionInspector.inspector_id)
        .where(
            InspectionInspector.enterprise_uscc.in_(usccs),
            InspectionInspector.inspection_id.in_(ids),
        )
        .order_by(Inspector.id)
    )
    for link, person in rows:
        people[link.inspection_id].append((link, person))
    return matters, people


async def read_inspections(
    session: AsyncSession, inspections: Sequence[Inspection], base_url: str
) -> list[InspectionRead]:
    """Present inspections with their matters and inspectors (two batched queries)."""
    matters, people = await _details(session, inspections)
    out = []
    for i in inspections:
        ms = matters[i.id]
        out.append(
            InspectionRead(
                id=i.id,
                enterprise_uscc=i.enterprise_uscc,
                kind=i.kind,
                status=i.status,
                agency_code=i.agency_code,
                agencies=sorted({i.agency_code, *(m.agency_code for m in ms)}),
                year=i.year,
                window_start=i.window_start,
                window_end=i.window_end,
                offsite=i.offsite,
                plan_id=i.plan_id,
                plan_item_id=i.plan_item_id,
                draw_id=i.draw_id,
                check_request_id=i.check_request_id,
                merged_into_id=i.merged_into_id,
                basis=i.basis,
                emergency=i.emergency,
                visit_date=i.visit_date,
                started_at=i.started_at,
                completed_at=i.completed_at,
                outcome=i.outcome,
                outcome_text=i.outcome_text,
                code=i.code,
                code_url=code_url(base_url, i.code),
                code_scanned_at=i.code_scanned_at,
                version=i.version,
                matters=[
                    MatterRef(code=m.matter_code, agency_code=m.agency_code, category=m.category)
                    for m in ms
                ],
                inspectors=[
                    InspectorRef(
                        id=p.id,
                        name=p.name,
                        agency_code=p.agency_code,
                        certificate_no=p.certificate_no,
                        certificate_valid_until=p.certificate_valid_until,
                        present=link.present,
                    )
                    for link, p in people[i.id]
                ],
            )
        )
    return out


# One statement per read route (issue 9): the inspection's columns plus its matters and
# inspectors aggregated as JSON arrays in the same row, instead of three ORM round trips.
_COLUMNS = """
    i.enterprise_uscc, i.id, i.kind, i.status, i.agency_code, i.year, i.window_start,
    i.window_end, i.offsite, i.plan_id, i.plan_item_id, i.draw_id, i.check_request_id,
    i.merged_into_id, i.basis, i.emergency, i.visit_date, i.started_at, i.completed_at,
    i.outcome, i.outcome_text, i.code, i.code_scanned_at, i.version,
    (SELECT json_agg(json_build_array(m.matter_code, m.agency_code, m.category)
                     ORDER BY m.matter_code)
       FROM inspection_matter m
      WHERE m.enterprise_uscc = i.enterprise_uscc AND m.inspection_id = i.id) AS matters,
    (SELECT json_agg(json_build_array(p.id, p.name, p.agency_code, p.certificate_no,
                                      p.certificate_valid_until, l.present) ORDER BY p.id)
       FROM inspection_inspector l JOIN inspector p ON p.id = l.inspector_id
      WHERE l.enterprise_uscc = i.enterprise_uscc AND l.inspection_id = i.id) AS inspectors
"""
# Sent straight to the driver (asyncpg, $n parameters): the two hottest reads skip the ORM
# session and SQLAlchemy's statement execution, a third of a request's CPU (docs/performance.md).
_ONE_INSPECTION = f"SELECT {_COLUMNS} FROM inspection i WHERE i.id = $1"
_ENTERPRISE_YEAR = f"""
    WITH e AS (
        SELECT e.uscc,
               coalesce((SELECT r.risk_class FROM enterprise_risk_class r
                          WHERE r.enterprise_uscc = e.uscc AND r.valid_from <= $3
                          ORDER BY r.valid_from DESC LIMIT 1), e.risk_class) AS risk_class
          FROM enterprise e WHERE e.uscc = $1
    )
    SELECT e.uscc AS e_uscc, e.risk_class AS e_risk_class, {_COLUMNS}
      FROM e LEFT JOIN inspection i ON i.enterprise_uscc = e.uscc AND i.year = $2
     ORDER BY i.window_start, i.id
    """


def _json_list(value: Any) -> list[Any]:
    # The driver's json codec may already have decoded the aggregate; NULL means none.
    if value is None:
        return []
    return json.loads(value) if isinstance(value, str | bytes) else list(value)


def _present_row(row: Any, base_url: str) -> InspectionRead:
    matters = _json_list(row["matters"])
    people = _json_list(row["inspectors"])
    return InspectionRead(
        id=row["id"],
        enterprise_uscc=row["enterprise_uscc"],
        kind=row["kind"],
        status=row["status"],
        agency_code=row["agency_code"],
        agencies=sorted({row["agency_code"], *(m[1] for m in matters)}),
        year=row["year"],
        window_start=row["window_start"],
        window_end=row["window_end"],
        offsite=row["offsite"],
        plan_id=row["plan_id"],
        plan_item_id=row["plan_item_id"],
        draw_id=row["draw_id"],
        check_request_id=row["check_request_id"],
        merged_into_id=row["merged_into_id"],
        basis=row["basis"],
        emergency=row["emergency"],
        visit_date=row["visit_date"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
        outcome=row["outcome"],
        outcome_text=row["outcome_text"],
        code=row["code"],
        code_url=code_url(base_url, row["code"]),
        code_scanned_at=row["code_scanned_at"],
        version=row["version"],
        matters=[MatterRef(code=c, agency_code=a, category=k) for c, a, k in matters],
        inspectors=[
            InspectorRef(
                id=pid,
                name=name,
                agency_code=agency,
                certificate_no=cert,
                certificate_valid_until=date.fromisoformat(until),
                present=present,
            )
            for pid, name, agency, cert, until, present in people
        ],
    )


async def read_inspection(
    conn: DriverConnection, actor: Principal, inspection_id: int, base_url: str
) -> InspectionRead:
    """One inspection presented, in one statement; 404 unless the caller's agency is involved.

    ``conn`` is a driver connection (``db.deps.autocommit_connection``): autocommit, no session.
    """
    if inspection_id.bit_length() > 63:  # no bigint id is that large (the driver would refuse)
        raise NotFound(f"Inspection {inspection_id} does not exist or is not visible to you.")
    row = await conn.fetchrow(_ONE_INSPECTION, inspection_id)
    if row is None:
        raise NotFound(f"Inspection {inspection_id} does not exist or is not visible to you.")
    read = _present_row(row, base_url)
    if not actor.sees_everything and actor.agency_code not in read.agencies:
        raise NotFound(f"Inspection {inspection_id} does not exist or is not visible to you.")
    return read


async def enterprise_year(
    conn: DriverConnection, uscc: str, year: int, day: date, base_url: str
) -> tuple[str, str, list[InspectionRead], int]:
    """Uscc, risk class on `day`, the year's inspections and how many count (one statement)."""
    code = uscc.strip().upper()
    if len(code) != 18:  # the key is char(18): no other length can be registered
        raise NotFound(f"Enterprise {code} is not registered.")
    rows = await conn.fetch(_ENTERPRISE_YEAR, code, year, day)
    if not rows:
        raise NotFound(f"Enterprise {code} is not registered.")
    items = [_present_row(r, base_url) for r in rows if r["id"] is not None]
    counted = sum(1 for i in items if i.status not in ("cancelled", "merged"))
    return rows[0]["e_uscc"], rows[0]["e_risk_class"], items, counted


def _involves(agency: str) -> Any:
    return or_(
        Inspection.agency_code == agency,
        exists().where(
            InspectionMatter.enterprise_uscc == Inspection.enterprise_uscc,
            InspectionMatter.inspection_id == Inspection.id,
            InspectionMatter.agency_code == agency,
        ),
    )


async def involved_agencies(session: AsyncSession, inspection: Inspection) -> set[str]:
    """The lead agency and every agency whose matters the inspection covers."""
    rows = await session.execute(
        select(InspectionMatter.agency_code).where(
            InspectionMatter.enterprise_uscc == inspection.enterprise_uscc,
            InspectionMatter.inspection_id == inspection.id,
        )
    )
    return {inspection.agency_code, *rows.scalars()}


async def get_inspection(
    session: AsyncSession, actor: Principal, inspection_id: int, *, for_update: bool = False
) -> Inspection:
    """The inspection if the caller's agency is involved (all for admin/supervisor), else 404."""
    stmt = select(Inspection).where(Inspection.id == inspection_id)
    if for_update:
        stmt = stmt.with_for_update()
    inspection = (await session.execute(stmt)).scalar_one_or_none()
    if inspection is None or (
        not actor.sees_everything
        and actor.agency_code not in await involved_agencies(session, inspection)
    ):
        raise NotFound(f"Inspection {inspection_id} does not exist or is not visible to you.")
    return inspection


async def list_inspections(
    session: AsyncSession,
    actor: Principal,
    *,
    agency: str | None,
    enterprise: str | None,
    status: str | None,
    year: int | None,
    plan_id: int | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[Inspection], str | None]:
    """Inspections involving the caller's agency (all for admin/supervisor), by id."""
    limit = max(1, min(limit, MAX_LIMIT))
    stmt = select(Inspection).order_by(Inspection.id).limit(limit + 1)
    if not actor.sees_everything:
        stmt = stmt.where(_involves(actor.agency_code or ""))
    if agency:
        stmt = stmt.where(_involves(agency))
    if enterprise:
        stmt = stmt.where(Inspection.enterprise_uscc == enterprise.upper())
    if status:
        stmt = stmt.where(Inspection.status == status)
    if year is not None:
        stmt = stmt.where(Inspection.year == year)
    if plan_id is not None:
        stmt = stmt.where(Inspection.plan_id == plan_id)
    after = decode_cursor(cursor)
    if after:
        stmt = stmt.where(Inspection.id > int(after[0]))
    rows = list((await session.execute(stmt)).scalars())
    next_cursor = encode_cursor([rows[limit - 1].id]) if len(rows) > limit else None
    return rows[:limit], next_cursor


# --- lifecycle -------------------------------------------------------------------------------


def _snapshot(i: Inspection) -> dict[str, Any]:
    return {
        "status": i.status,
        "version": i.version,
        "visit_date": i.visit_date.isoformat() if i.visit_date else None,
        "outcome": i.outcome,
    }


async def _begin(
    session: AsyncSession, actor: Principal, inspection_id: int, action: str, if_match: int | None
) -> tuple[Inspection, dict[str, Any], InspectionStatus, set[str]]:
    inspection = await get_inspection(session, actor, inspection_id, for_update=True)
    if if_match is not None and if_match != inspection.version:
        raise PreconditionFailed(
            f"Inspection {inspection.id} is at version {inspection.version}, not {if_match}."
        )
    target = next_status(inspection.status, action)
    agencies = await involved_agencies(session, inspection)
    return inspection, _snapshot(inspection), target, agencies


def _base_payload(i: Inspection, agencies: set[str]) -> dict[str, Any]:
    return {
        "inspection_id": i.id,
        "enterprise": i.enterprise_uscc,
        "agency": i.agency_code,
        "agencies": sorted(agencies),
        "kind": i.kind,
        "plan_id": i.plan_id,
        "check_request_id": i.check_request_id,
        "window_start": i.window_start.isoformat(),
        "window_end": i.window_end.isoformat(),
    }


async def _commit_change(
    session: AsyncSession,
    actor: Principal | None,
    inspection: Inspection,
    before: dict[str, Any],
    action: str,
    event: ev.EventType,
    payload: dict[str, Any],
) -> None:
    inspection.version += 1
    inspection.updated_at = utcnow()
    await session.flush()
    await record(
        session,
        actor,
        f"inspection.{action}",
        "inspection",
        inspection.id,
        before=before,
        after={**_snapshot(inspection), **payload},
    )
    await emit(
        session,
        event,
        inspection.id,
        payload,
        enterprise_uscc=inspection.enterprise_uscc,
        agency_codes=payload["agencies"],
    )


async def start_inspection(
    session: AsyncSession, actor: Principal, inspection_id: int, if_match: int | None
) -> Inspection:
    """Mark the visit as started."""
    inspection, before, target, agencies = await _begin(
        session, actor, inspection_id, "start", if_match
    )
    inspection.status = target.value
    inspection.started_at = inspection.started_at or utcnow()
    payload = {**_base_payload(inspection, agencies), "started_at": inspection.started_at}
    await _commit_change(
        session, actor, inspection, before, "start", ev.INSPECTION_STARTED, payload
    )
    return inspection


async def cancel_inspection(
    session: AsyncSession, actor: Principal, inspection_id: int, reason: str, if_match: int | None
) -> Inspection:
    """Cancel a scheduled inspection (its code is refused from then on)."""
    inspection, before, target, agencies = await _begin(
        session, actor, inspection_id, "cancel", if_match
    )
    inspection.status = target.value
    payload = {**_base_payload(inspection, agencies), "reason": reason}
    await _commit_change(
        session, actor, inspection, before, "cancel", ev.INSPECTION_CANCELLED, payload
    )
    return inspection


async def complete_inspection(
    session: AsyncSession,
    actor: Principal,
    inspection_id: int,
    data: InspectionComplete,
    min_present: int,
    if_match: int | None,
) -> Inspection:
    """Record the visit: date, inspectors present (certificates valid that day), outcome."""
    inspection, before, target, agencies = await _begin(
        session, actor, inspection_id, "complete", if_match
    )
    errors: list[dict[str, Any]] = []
    present_ids = list(dict.fromkeys(data.inspectors_present))
    if data.visit_date > local_today():
        errors.append({"field": "visit_date", "detail": "the visit date is in the future"})
    if len(present_ids) < min_present:
        errors.append(
            {
                "field": "inspectors_present",
                "detail": f"at least {min_present} certified inspectors must be present",
            }
        )
    people = {
        p.id: p
        for p in (
            await session.execute(select(Inspector).where(Inspector.id.in_(present_ids)))
        ).scalars()
    }
    for pos, pid in enumerate(present_ids):
        person = people.get(pid)
        field = f"inspectors_present.{pos}"
        if person is None:
            errors.append({"field": field, "detail": f"unknown inspector {pid}"})
        elif person.agency_code not in agencies:
            errors.append(
                {"field": field, "detail": f"inspector {pid} is not of an involved agency"}
            )
        elif person.certificate_valid_until < data.visit_date:
            errors.append(
                {
                    "field": field,
                    "inspector_id": pid,
                    "detail": f"执法证已过期 / the certificate {person.certificate_no} of "
                    f"{person.name} expired on {person.certificate_valid_until}, before the visit "
                    f"on {data.visit_date}",
                }
            )
    if errors:
        raise ValidationFailed(f"{len(errors)} problem(s) with the completion.", errors=errors)
    assigned = set(
        (
            await session.execute(
                select(InspectionInspector.inspector_id).where(
                    InspectionInspector.enterprise_uscc == inspection.enterprise_uscc,
                    InspectionInspector.inspection_id == inspection.id,
                )
            )
        ).scalars()
    )
    await session.execute(
        update(InspectionInspector)
        .where(
            InspectionInspector.enterprise_uscc == inspection.enterprise_uscc,
            InspectionInspector.inspection_id == inspection.id,
        )
        .values(present=InspectionInspector.inspector_id.in_(present_ids))
    )
    for pid in present_ids:
        if pid not in assigned:
            session.add(
                InspectionInspector(
                    enterprise_uscc=inspection.enterprise_uscc,
                    inspection_id=inspection.id,
                    inspector_id=pid,
                    present=True,
                    booked_day=data.visit_date,
                )
            )
    now = utcnow()
    inspection.status = target.value
    inspection.visit_date = data.visit_date
    inspection.completed_at = now
    inspection.outcome = data.outcome.value
    inspection.outcome_text = data.outcome_text
    payload = {
        **_base_payload(inspection, agencies),
        "visit_date": data.visit_date.isoformat(),
        "inspectors_present": present_ids,
        "outcome": data.outcome.value,
        "code_scanned_at": inspection.code_scanned_at,
        "started_at": inspection.started_at,
        "completed_at": now,
    }
    await _commit_change(
        session, actor, inspection, before, "complete", ev.INSPECTION_COMPLETED, payload
    )
    return inspection


# --- inspection codes at the door ------------------------------------------------------------


class CodeRefused(Exception):
    """A code was refused; `error` is the problem to answer, `reason` goes into the event."""

    def __init__(self, error: AppError, reason: str) -> None:
        super().__init__(error.detail)
        self.error = error
        self.reason = reason


_MALFORMED = "malformed inspection code"


async def _refused_event(
    session: AsyncSession, code: str, reason: str, claims: CodeClaims | None
) -> None:
    payload: dict[str, Any] = {"reason": reason, "code_sha256": _code_id(code)}
    if claims is not None:
        payload.update(
            {
                "inspection_id": claims.inspection_id,
                "enterprise": claims.uscc,
                "agency": claims.agency_code,
                "expires_on": claims.expires_on.isoformat(),
            }
        )
    await emit(
        session,
        ev.INSPECTION_CODE_REFUSED,
        _code_id(code),
        payload,
        enterprise_uscc=claims.uscc if claims else None,
        agency_codes=[claims.agency_code] if claims else None,
    )


def _code_id(code: str) -> str:
    return hashlib.sha256(code.encode("utf-8", "replace")).hexdigest()[:32]


async def check_code(
    session: AsyncSession, keyring: CodeKeyring, code: str, *, for_update: bool = False
) -> tuple[Inspection, CodeClaims]:
    """Verify a code and find its inspection, or raise `CodeRefused` (event already written).

    Malformed tokens (not even a well-formed signed code) are refused without writing an event,
    so that junk requests cannot fill the outbox; forged, expired and cancelled ones are reported.
    """
    try:
        claims = keyring.verify(code, local_today())
    except CodeExpired as exc:
        await _refused_event(session, code, "expired", exc.claims)
        raise CodeRefused(
            Gone(
                f"检查码已过期（有效期至 {exc.claims.expires_on}）/ "
                f"the inspection code expired on {exc.claims.expires_on}.",
                reason="expired",
            ),
            "expired",
        ) from exc
    except CodeForged as exc:
        if str(exc) != _MALFORMED:
            await _refused_event(session, code, "forged", None)
        raise CodeRefused(
            NotFound(
                f"检查码无效：签名校验失败 / invalid inspection code: {exc}.", reason="forged"
            ),
            "forged",
        ) from exc
    stmt = select(Inspection).where(
        Inspection.enterprise_uscc == claims.uscc, Inspection.id == claims.inspection_id
    )
    if for_update:
        stmt = stmt.with_for_update()
    inspection = (await session.execute(stmt)).scalar_one_or_none()
    if inspection is None or inspection.code != code:
        await _refused_event(session, code, "unknown", claims)
        raise CodeRefused(
            NotFound(
                "检查码无效：未登记的检查 / "
                "invalid inspection code: no such registered inspection.",
                reason="unknown",
            ),
            "unknown",
        )
    if inspection.status in (InspectionStatus.cancelled, InspectionStatus.merged):
        await _refused_event(session, code, inspection.status, claims)
        what = "已取消" if inspection.status == InspectionStatus.cancelled else "已合并至联合检查"
        raise CodeRefused(
            Gone(
                f"检查码已失效：该检查{what} / the inspection was {inspection.status}; "
                "this code is no longer valid.",
                reason=inspection.status,
            ),
            inspection.status,
        )
    return inspection, claims


async def code_lookup(session: AsyncSession, keyring: CodeKeyring, code: str) -> CodeLookup:
    """What a valid code shows at the door; raises `CodeRefused` otherwise."""
    inspection, claims = await check_code(session, keyring, code)
    enterprise = await session.get(Enterprise, inspection.enterprise_uscc)
    agency = await session.get(Agency, inspection.agency_code)
    matters, people = await _details(session, [inspection])
    names = {
        m.code: m.name
        for m in (
            await session.execute(
                select(Matter).where(
                    Matter.code.in_([m.matter_code for m in matters[inspection.id]])
                )
            )
        ).scalars()
    }
    ms = matters[inspection.id]
    return CodeLookup(
        message="检查码有效：以下为登记的检查信息 / valid inspection code: registered inspection",
        inspection_id=inspection.id,
        status=inspection.status,
        kind=inspection.kind,
        enterprise_uscc=inspection.enterprise_uscc,
        enterprise_name=enterprise.name if enterprise else "",
        agency_code=inspection.agency_code,
        agency_name=agency.name if agency else inspection.agency_code,
        agencies=sorted({inspection.agency_code, *(m.agency_code for m in ms)}),
        matters=[
            MatterRef(
                code=m.matter_code,
                agency_code=m.agency_code,
                category=m.category,
                name=names.get(m.matter_code),
            )
            for m in ms
        ],
        window_start=inspection.window_start,
        window_end=inspection.window_end,
        expires_on=claims.expires_on,
        inspectors=[
            CodeInspector(
                name=p.name,
                agency_code=p.agency_code,
                certificate_no=p.certificate_no,
                certificate_valid_until=p.certificate_valid_until,
            )
            for _, p in people[inspection.id]
        ],
        code_scanned_at=inspection.code_scanned_at,
        started_at=inspection.started_at,
    )


async def scan_code(session: AsyncSession, keyring: CodeKeyring, code: str) -> ScanResult:
    """Record the enterprise's scan; the first scan marks the visit's start."""
    inspection, _ = await check_code(session, keyring, code, for_update=True)
    if inspection.status == InspectionStatus.completed:
        raise Conflict(
            "该检查已完成，无需扫码 / the inspection is already completed.",
            current_status=inspection.status,
        )
    first = inspection.code_scanned_at is None
    if first:
        agencies = await involved_agencies(session, inspection)
        before = _snapshot(inspection)
        now = utcnow()
        inspection.code_scanned_at = now
        started = False
        if inspection.status == InspectionStatus.scheduled:
            inspection.status = next_status(inspection.status, "start").value
            started = True
        if inspection.started_at is None:
            inspection.started_at = now
        payload = {
            **_base_payload(inspection, agencies),
            "code_scanned_at": now,
            "started_at": inspection.started_at,
            "started_by_scan": started,
        }
        await _commit_change(
            session, None, inspection, before, "code_scan", ev.INSPECTION_CODE_SCANNED, payload
        )
        if started:
            await emit(
                session,
                ev.INSPECTION_STARTED,
                inspection.id,
                payload,
                enterprise_uscc=inspection.enterprise_uscc,
                agency_codes=payload["agencies"],
            )
    assert inspection.code_scanned_at is not None
    return ScanResult(
        inspection_id=inspection.id,
        first_scan=first,
        status=inspection.status,
        code_scanned_at=inspection.code_scanned_at,
        started_at=inspection.started_at,
    )


# --- per enterprise and public ---------------------------------------------------------------


async def enterprise_inspections(
    session: AsyncSession, uscc: str, year: int
) -> tuple[Enterprise, list[Inspection], int]:
    """The enterprise's inspections of a year and how many count towards the cap."""
    code = uscc.strip().upper()
    enterprise = await session.get(Enterprise, code)
    if enterprise is None:
        raise NotFound(f"Enterprise {code} is not registered.")
    rows = list(
        (
            await session.execute(
                select(Inspection)
                .where(Inspection.enterprise_uscc == code, Inspection.year == year)
                .order_by(Inspection.window_start, Inspection.id)
            )
        ).scalars()
    )
    counted = sum(1 for i in rows if i.status not in ("cancelled", "merged"))
    return enterprise, rows, counted


async def public_inspections(
    session: AsyncSession, year: int | None, agency: str | None, cursor: str | None, limit: int
) -> tuple[list[PublicInspection], str | None]:
    """Completed inspections of published plans (一公开), without personal data."""
    limit = max(1, min(limit, MAX_LIMIT))
    conds = ["i.status = 'completed'", "p.status = 'published'"]
    params: dict[str, Any] = {"limit": limit + 1}
    if year is not None:
        conds.append("i.year = :year")
        params["year"] = year
    if agency:
        conds.append(
            "(i.agency_code = :agency OR EXISTS (SELECT 1 FROM inspection_matter x "
            "WHERE x.enterprise_uscc = i.enterprise_uscc AND x.inspection_id = i.id "
            "AND x.agency_code = :agency))"
        )
        params["agency"] = agency
    after = decode_cursor(cursor)
    if after:
        conds.append("i.id > :after")
        params["after"] = int(after[0])
    rows = (
        await session.execute(
            text(
                f"""
                SELECT i.id, i.plan_id, i.enterprise_uscc, e.name AS enterprise_name,
                       i.agency_code, a.name AS agency_name, i.kind, i.visit_date, i.outcome,
                       (SELECT array_agg(DISTINCT m.agency_code) FROM inspection_matter m
                         WHERE m.enterprise_uscc = i.enterprise_uscc
                           AND m.inspection_id = i.id) AS agencies,
                       (SELECT array_agg(m.matter_code ORDER BY m.matter_code)
                          FROM inspection_matter m
                         WHERE m.enterprise_uscc = i.enterprise_uscc
                           AND m.inspection_id = i.id) AS matters
                FROM inspection i
                JOIN plan p ON p.id = i.plan_id
                JOIN enterprise e ON e.uscc = i.enterprise_uscc
                JOIN agency a ON a.code = i.agency_code
                WHERE {" AND ".join(conds)}
                ORDER BY i.id
                LIMIT :limit
                """
            ),
            params,
        )
    ).mappings()
    items = [
        PublicInspection(
            inspection_id=r["id"],
            plan_id=r["plan_id"],
            enterprise_uscc=r["enterprise_uscc"],
            enterprise_name=r["enterprise_name"],
            agency_code=r["agency_code"],
            agency_name=r["agency_name"],
            agencies=sorted({r["agency_code"], *(r["agencies"] or [])}),
            kind=r["kind"],
            matters=list(r["matters"] or []),
            visit_date=r["visit_date"],
            outcome=r["outcome"],
        )
        for r in rows
    ]
    next_cursor = encode_cursor([items[limit - 1].inspection_id]) if len(items) > limit else None
    return items[:limit], next_cursor
