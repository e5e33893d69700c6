"""Check requests: submission with pre-check, exactly-once decisions, listing and deadlines."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

import asyncpg
from pydantic_core import to_json
from sqlalchemy import Table, and_, or_, select, text, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from inspection_hub.approvals.models import CheckRequest
from inspection_hub.approvals.precheck import build_precheck
from inspection_hub.approvals.schemas import (
    EMERGENCY_BASES,
    MIN_OTHER_REASON,
    CheckRequestCreate,
)
from inspection_hub.approvals.state import PAST_TENSE, Action, CheckRequestStatus, next_status
from inspection_hub.audit.service import AuditEntry, record
from inspection_hub.auth.principal import Principal
from inspection_hub.config import Settings
from inspection_hub.conflicts.facts import (
    EnterpriseFacts,
    MatterRow,
    enterprise_rows_call,
    facts_of,
    load_enterprise_rows,
    load_submission_rows,
    matters_of,
    submission_bounds,
)
from inspection_hub.db.deps import DriverConnection
from inspection_hub.db.session import driver_connection
from inspection_hub.enterprises.schemas import check_uscc
from inspection_hub.errors import (
    Conflict,
    Forbidden,
    NotFound,
    PreconditionFailed,
    ValidationFailed,
)
from inspection_hub.events import types as ev
from inspection_hub.events.outbox import emit, write_with_event
from inspection_hub.inspections.codes import CodeKeyring
from inspection_hub.inspections.models import Inspection
from inspection_hub.inspections.service import create_inspection, keyring_for
from inspection_hub.inspections.state import InspectionStatus
from inspection_hub.kit.context import request_id_var
from inspection_hub.kit.pagination import MAX_LIMIT, decode_cursor, encode_cursor
from inspection_hub.kit.timeutil import utcnow
from inspection_hub.kit.workdays import SHANGHAI, add_working_days
from inspection_hub.policy import (
    Policy,
    PolicyBook,
    PolicyNotInForceError,
    policy_in_force,
)

logger = logging.getLogger(__name__)
T = cast(Table, CheckRequest.__table__)
PENDING = CheckRequestStatus.pending.value
DECISION_EVENTS = {
    Action.approve: ev.CHECK_REQUEST_APPROVED,
    Action.reject: ev.CHECK_REQUEST_REJECTED,
    Action.withdraw: ev.CHECK_REQUEST_WITHDRAWN,
}


def policy_book(settings: Settings) -> PolicyBook:
    """The policy book in force (re-read when the file changes)."""
    return policy_in_force(settings.policy_path())


@dataclass(frozen=True, slots=True)
class RequestView:
    """A check request row and, when computed, its pre-check."""

    row: RowMapping
    precheck: dict[str, Any] | None = None


def _err(field_name: str, detail: str) -> dict[str, str]:
    return {"field": field_name, "detail": detail}


async def _load_matters(session: AsyncSession, codes: list[str]) -> dict[str, RowMapping]:
    result = await session.execute(
        text("SELECT code, agency_code, category FROM matter WHERE code = ANY(:codes)"),
        {"codes": codes},
    )
    return {r["code"]: r for r in result.mappings()}


def _validate_window(data: CheckRequestCreate, today: date, policy: Policy | None) -> list[Any]:
    errors = []
    start, end = data.window.start, data.window.end
    if start < today:
        errors.append(_err("window.start", f"is in the past (today is {today.isoformat()})"))
    if end < start:
        errors.append(_err("window.end", "is before window.start"))
    elif policy is not None:
        longest = policy.check_requests.max_unplanned_window_days
        if (end - start).days + 1 > longest:
            errors.append(
                _err(
                    "window.end", f"the window is {(end - start).days + 1} days; at most {longest}"
                )
            )
    return errors


# The request's INSERT, built once (values bound per call): alone in the emergency flow, or as
# the first part of one statement with its event and audit row.
_REQUEST_COLUMNS = (
    "id", "enterprise_uscc", "agency_code", "requester_id", "requester_name", "matters", "basis",
    "basis_ref", "reason", "window_start", "window_end", "emergency", "status", "version",
    "policy_version", "submitted_at", "decision_due_at", "expires_at", "emergency_due_at",
    "inspection_id", "created_at", "updated_at",
)  # fmt: skip
_INSERT_REQUEST_SQL = (
    f"INSERT INTO check_request ({', '.join(_REQUEST_COLUMNS)}) "
    f"VALUES ({', '.join(':r_' + c for c in _REQUEST_COLUMNS)}) "
    "RETURNING *"
)
_INSERT_REQUEST = text(_INSERT_REQUEST_SQL)


@dataclass(frozen=True, slots=True)
class _Checked:
    """A submission after the checks that need no database, with what they found wrong."""

    uscc: str | None
    codes: list[str]
    policy: Policy | None
    errors: list[dict[str, str]]
    now: datetime


def _check_body(
    actor: Principal, data: CheckRequestCreate, settings: Settings, now: datetime | None
) -> _Checked:
    """The agency (403), the policy in force, the window, the basis, the matters listed once and
    the USCC's check character: every problem found, nothing raised but the 403."""
    actor.ensure_agency(data.agency)
    now = now or utcnow()
    today = now.astimezone(SHANGHAI).date()
    errors: list[dict[str, str]] = []
    policy: Policy | None = None
    try:
        policy = policy_book(settings).at(data.window.start)
    except PolicyNotInForceError:
        errors.append(_err("window.start", "no inspection policy is in force on this date"))
    errors += _validate_window(data, today, policy)
    if data.basis == "other" and len(data.reason) < MIN_OTHER_REASON:
        errors.append(
            _err(
                "reason", f"basis 'other' needs a reason of at least {MIN_OTHER_REASON} characters"
            )
        )
    if data.emergency and data.basis not in EMERGENCY_BASES:
        errors.append(
            _err("emergency", "only incident- or complaint-based checks may be emergencies")
        )
    codes = list(data.matters)
    seen: set[str] = set()
    for i, code in enumerate(codes):
        if code in seen:
            errors.append(_err(f"matters.{i}", f"matter {code} is listed twice"))
        seen.add(code)
    uscc, reason = check_uscc(data.enterprise)
    if uscc is None:
        errors.append(_err("enterprise", f"is not a valid USCC ({reason})"))
    return _Checked(uscc, codes, policy, errors, now)


def _stored_errors(
    data: CheckRequestCreate,
    checked: _Checked,
    matters: Mapping[str, MatterRow],
    loaded: EnterpriseFacts | None,
) -> list[dict[str, str]]:
    """What the database says is wrong: unknown matters, another agency's, an unknown enterprise."""
    errors = []
    for i, code in enumerate(checked.codes):
        m = matters.get(code)
        if m is None:
            errors.append(_err(f"matters.{i}", f"unknown matter {code}"))
        elif m.agency_code != data.agency:
            errors.append(
                _err(
                    f"matters.{i}",
                    f"matter {code} belongs to agency {m.agency_code}, not {data.agency}",
                )
            )
    if checked.uscc is not None and loaded is None:
        errors.append(_err("enterprise", f"enterprise {checked.uscc} is not registered"))
    return errors


def _refuse(errors: list[dict[str, str]]) -> ValidationFailed:
    return ValidationFailed(f"{len(errors)} field(s) are invalid.", errors=errors)


def _request_values(
    actor: Principal, data: CheckRequestCreate, checked: _Checked, policy: Policy, uscc: str
) -> dict[str, Any]:
    """The new request's columns but its id (pending, version 1, deadlines in working days)."""
    rules = policy.check_requests
    now = checked.now
    due = add_working_days(now, rules.decision_working_days)
    return {
        "enterprise_uscc": uscc,
        "agency_code": data.agency,
        "requester_id": actor.user_id,
        "requester_name": actor.display_name,
        "matters": checked.codes,
        "basis": data.basis,
        "basis_ref": data.basis_ref,
        "reason": data.reason,
        "window_start": data.window.start,
        "window_end": data.window.end,
        "emergency": data.emergency,
        "status": PENDING,
        "version": 1,
        "policy_version": policy.version,
        "submitted_at": now,
        "decision_due_at": due,
        "expires_at": add_working_days(due, rules.escalation_to_expiry_working_days),
        "emergency_due_at": (
            now + timedelta(hours=rules.emergency_approval_hours) if data.emergency else None
        ),
        "inspection_id": None,
        "created_at": now,
        "updated_at": now,
    }


def _precheck_of_new(
    loaded: EnterpriseFacts,
    actor: Principal,
    policy: Policy,
    data: CheckRequestCreate,
    request_id: int,
    categories: frozenset[str],
) -> dict[str, Any]:
    return build_precheck(
        loaded,
        actor,
        policy,
        request_id=request_id,
        agency_code=data.agency,
        categories=categories,
        basis=data.basis,
        window_start=data.window.start,
        window_end=data.window.end,
    )


async def submit(
    session: AsyncSession,
    actor: Principal,
    data: CheckRequestCreate,
    *,
    settings: Settings,
    now: datetime | None = None,
) -> RequestView:
    """File a request (pending), with its deadline and pre-check; an emergency is scheduled now.

    In the session's transaction: for an emergency (its inspection is created too) and for a
    request with an Idempotency-Key (its stored answer commits with it). Otherwise the route
    uses `submit_at_once`.
    """
    checked = _check_body(actor, data, settings, now)
    uscc, codes, policy, now = checked.uscc, checked.codes, checked.policy, checked.now
    # One round trip: the matters, the enterprise's facts around the year, a new request id.
    reads = await load_submission_rows(session, uscc, data.window.start.year, set(codes))
    loaded, matters, request_id = reads.facts, reads.matters, reads.request_id
    errors = checked.errors + _stored_errors(data, checked, matters, loaded)
    if errors or policy is None or loaded is None or uscc is None:
        raise _refuse(errors)
    values = {"id": request_id} | _request_values(actor, data, checked, policy, uscc)
    bound = {"r_" + k: v for k, v in values.items()}
    categories = frozenset(matters[c].category for c in codes)
    # Computed before anything is written: nothing can fail after the write.
    precheck = _precheck_of_new(loaded, actor, policy, data, request_id, categories)
    if data.emergency:
        # 先行检查: scheduled at once, pending approval (design section 4); the inspection
        # references the request, so the request is written first, the event last.
        row = (await session.execute(_INSERT_REQUEST, bound)).mappings().one()
        inspection = await create_inspection(
            session,
            actor,
            keyring=keyring_for(settings.data_dir),
            enterprise_uscc=uscc,
            agency_code=data.agency,
            kind="unplanned",
            matter_codes=codes,
            window_start=data.window.start,
            window_end=data.window.end,
            check_request_id=request_id,
            basis=data.basis,
            emergency=True,
        )
        row = await _set_inspection(session, row, inspection.id)
        payload = _payload(row) | {"categories": sorted(categories)}
        await emit(
            session,
            ev.CHECK_REQUEST_SUBMITTED,
            request_id,
            payload,
            enterprise_uscc=uscc,
            agency_codes=[data.agency],
            audit=AuditEntry(
                actor, "check_request.submit", "check_request", request_id, after=payload
            ),
        )
    else:
        # The request, its event and its audit row: one statement.
        payload = _payload(values) | {"categories": sorted(categories)}
        (row,) = await write_with_event(
            session,
            _INSERT_REQUEST_SQL,
            bound,
            ev.CHECK_REQUEST_SUBMITTED,
            request_id,
            payload,
            enterprise_uscc=uscc,
            agency_codes=[data.agency],
            audit=AuditEntry(
                actor, "check_request.submit", "check_request", request_id, after=payload
            ),
        )
    return RequestView(row, precheck)


_SUBMIT_AT_ONCE = """
WITH m AS (
    SELECT json_agg(json_build_array(code, agency_code, category)) AS matter_rows,
           count(*) FILTER (WHERE agency_code = $6) AS own,
           array_agg(DISTINCT category::text COLLATE "C") AS categories
    FROM matter WHERE code = ANY($5::varchar[])
), f AS (
    SELECT * FROM precheck_facts($1::bpchar, $2::date, $3::date, $4::date)
), w AS (
    INSERT INTO check_request (id, enterprise_uscc, agency_code, requester_id, requester_name,
                               matters, basis, basis_ref, reason, window_start, window_end,
                               emergency, status, version, policy_version, submitted_at,
                               decision_due_at, expires_at, emergency_due_at, inspection_id,
                               created_at, updated_at)
    SELECT nextval('check_request_id_seq'), $1, $6, $7, $8, $5, $9,
           $10, $11, $12, $13, false, 'pending', 1, $14, $15, $16, $17, NULL, NULL, $15, $15
    FROM m, f
    WHERE $27::boolean AND m.own = cardinality($5::varchar[])
    RETURNING *
), p AS (
    SELECT w.id, $18::jsonb || jsonb_build_object('check_request_id', w.id,
                                                   'categories', to_jsonb(m.categories))
           AS payload
    FROM w, m
), ev AS (
    INSERT INTO event (type, type_version, aggregate_type, aggregate_id, aggregate_seq,
                       enterprise_uscc, agency_codes, payload, commit_order)
    SELECT $19, $20, $21, p.id::text, 1, $1, $22::varchar[], p.payload,
           (pg_current_xact_id()::text)::bigint
    FROM p
), au AS (
    INSERT INTO audit_log (actor_id, actor_name, role, action, object_type, object_id, before,
                           after, request_id)
    SELECT $23, $24, $25, 'check_request.submit', 'check_request', p.id::text, NULL, p.payload,
           $26
    FROM p
)
SELECT m.matter_rows, f.uscc, f.risk_class, f.established_on, f.since, f.classes, f.history,
       f.requests, f.bookings, w.*
FROM m LEFT JOIN f ON true LEFT JOIN w ON true
"""
"""A submission in one statement, outside any transaction (so its own): reads the listed matters
and the enterprise's facts exactly as `load_submission_rows` does and, when $27 says the body
passed the checks that need no database, every matter is the agency's and the enterprise is
registered, inserts the request, its event (a new aggregate: sequence 1; commit order as
`events.outbox.emit` assigns it; the `event_notify` trigger wakes the workers) and its audit row,
whose payload gains the new id and the matters' categories. Every CTE sees the snapshot taken
before the insert, so the facts never include the new request. A refused submission writes
nothing and draws no request id. One row always comes back: the matters and facts for the
errors or the pre-check, and the request's columns (NULL when nothing was written)."""


async def submit_at_once(
    conn: DriverConnection,
    actor: Principal,
    data: CheckRequestCreate,
    *,
    settings: Settings,
    now: datetime | None = None,
) -> RequestView:
    """`submit` for a non-emergency request without an Idempotency-Key: one round trip.

    ``conn`` is a driver connection in autocommit: the one statement is its own transaction
    (the request, its event and its audit row, or nothing). The pre-check is computed from the
    facts the statement read before its insert, as `submit` computes it.
    """
    if data.emergency:
        raise ValueError("an emergency request is submitted with submit()")
    checked = _check_body(actor, data, settings, now)
    uscc, codes, policy, now = checked.uscc, checked.codes, checked.policy, checked.now
    ok = not checked.errors and policy is not None and uscc is not None
    # Placeholders when the body already failed (nothing is then written).
    values: dict[str, Any] = (
        _request_values(actor, data, checked, policy, uscc)
        if policy is not None and uscc is not None
        else {"policy_version": "", "decision_due_at": now, "expires_at": now}
    )
    # `_payload` of the new row; the statement adds its id and the matters' categories.
    payload = (
        {k: v for k, v in _payload({"id": None, **values}).items() if k != "check_request_id"}
        if ok
        else {}
    )
    submitted = ev.CHECK_REQUEST_SUBMITTED
    try:
        row = await conn.fetchrow(
            _SUBMIT_AT_ONCE,
            uscc,
            *submission_bounds(data.window.start.year),
            codes,
            data.agency,
            actor.user_id,
            actor.display_name,
            data.basis,
            data.basis_ref,
            data.reason,
            data.window.start,
            data.window.end,
            values["policy_version"],
            now,
            values["decision_due_at"],
            values["expires_at"],
            _json(payload),
            submitted.name,
            submitted.version,
            submitted.aggregate,
            [data.agency],
            actor.user_id,
            actor.username,
            actor.role.value,
            request_id_var.get(),
            ok,
        )
    except asyncpg.DataError as exc:  # a value PostgreSQL cannot hold (NUL, out of range)
        raise ValidationFailed(
            "A value in the request cannot be stored (out of range or NUL)."
        ) from exc
    loaded = facts_of(row)
    if row["id"] is None or policy is None or loaded is None:
        matters = matters_of(row["matter_rows"])
        raise _refuse(checked.errors + _stored_errors(data, checked, matters, loaded))
    categories = frozenset(matters_of(row["matter_rows"])[c].category for c in codes)
    try:
        precheck = _precheck_of_new(loaded, actor, policy, data, int(row["id"]), categories)
    except Exception:  # the request is filed: answer it, GET recomputes the pre-check
        logger.exception("pre-check of check request %s failed after filing", row["id"])
        precheck = None
    return RequestView(row, precheck)


def _payload(row: RowMapping | Mapping[str, Any]) -> dict[str, Any]:
    """The event/audit payload of a request (see docs/events.md)."""
    return {
        "check_request_id": row["id"],
        "enterprise": row["enterprise_uscc"],
        "agency": row["agency_code"],
        "matters": list(row["matters"]),
        "basis": row["basis"],
        "basis_ref": row["basis_ref"],
        "window_start": row["window_start"].isoformat(),
        "window_end": row["window_end"].isoformat(),
        "emergency": row["emergency"],
        "status": row["status"],
        "version": row["version"],
        "decision_due_at": row["decision_due_at"].isoformat(),
        "inspection_id": row["inspection_id"],
    }


async def _set_inspection(session: AsyncSession, row: RowMapping, inspection_id: int) -> RowMapping:
    return (
        (
            await session.execute(
                update(T)
                .where(T.c.enterprise_uscc == row["enterprise_uscc"], T.c.id == row["id"])
                .values(inspection_id=inspection_id)
                .returning(*T.c)
            )
        )
        .mappings()
        .one()
    )


async def _row_by_id(session: AsyncSession, request_id: int) -> RowMapping:
    row = (await session.execute(select(T).where(T.c.id == request_id))).mappings().first()
    if row is None:
        raise NotFound(f"Check request {request_id} does not exist.")
    return row


def _requests_with_facts(uscc: str) -> str:
    """Check requests ``c`` with their matters' categories and, for the enterprise the SQL
    expression ``uscc`` names (NULL: none), the facts around the window's year exactly as
    load_enterprise_rows loads them (precheck_facts joined LATERAL); a WHERE clause follows."""
    return (
        "SELECT c.*, m.categories, f.* FROM check_request c "
        "CROSS JOIN LATERAL (SELECT coalesce(array_agg(DISTINCT mt.category), '{}') AS categories "
        "FROM matter mt WHERE mt.code = ANY(c.matters)) m "
        "LEFT JOIN LATERAL "
        + enterprise_rows_call(uscc, "extract(year FROM c.window_start)::int")
        + " f ON true "
    )


# GET /v1/check-requests/{id} in one round trip (issue 9); the facts only for a viewer who may
# see the request (NULL for anyone else, who gets the 403).
_READ_REQUEST = (
    _requests_with_facts(
        "CASE WHEN $2::boolean OR c.agency_code = $3::text THEN c.enterprise_uscc END"
    )
    + "WHERE c.id = $1::bigint"
)
_BIGINT = range(-(2**63), 2**63)


async def read_request(
    conn: DriverConnection, viewer: Principal, request_id: int, *, settings: Settings
) -> RequestView:
    """One request with a fresh pre-check, in one statement; 404 if unknown, 403 for another
    agency's (checked before anything is presented). ``conn`` is a driver connection."""
    if request_id not in _BIGINT:  # as the session path answered the driver's range error
        raise ValidationFailed("A value in the request cannot be stored (out of range or NUL).")
    row = await conn.fetchrow(_READ_REQUEST, request_id, viewer.sees_everything, viewer.agency_code)
    if row is None:
        raise NotFound(f"Check request {request_id} does not exist.")
    viewer.ensure_agency(row["agency_code"])
    return _view_with_facts(row, viewer, settings)


def _view_with_facts(row: Any, viewer: Principal, settings: Settings) -> RequestView:
    """A row of `_requests_with_facts` with its pre-check (None without facts)."""
    loaded = facts_of(row)
    if loaded is None:
        return RequestView(row)
    return RequestView(row, _precheck(loaded, viewer, row, frozenset(row["categories"]), settings))


async def get_request(
    session: AsyncSession, viewer: Principal, request_id: int, *, settings: Settings
) -> RequestView:
    """``read_request`` inside the session's transaction (the pages)."""
    return await read_request(
        await driver_connection(session), viewer, request_id, settings=settings
    )


def _precheck(
    loaded: EnterpriseFacts,
    viewer: Principal,
    row: Any,
    categories: frozenset[str],
    settings: Settings,
) -> dict[str, Any] | None:
    try:
        policy = policy_book(settings).at(row["window_start"])
    except PolicyNotInForceError:
        return None
    return build_precheck(
        loaded,
        viewer,
        policy,
        request_id=int(row["id"]),
        agency_code=row["agency_code"],
        categories=categories,
        basis=row["basis"],
        window_start=row["window_start"],
        window_end=row["window_end"],
    )


async def precheck_of(
    session: AsyncSession, viewer: Principal, row: RowMapping, *, settings: Settings
) -> dict[str, Any] | None:
    """The pre-check of a stored request as the viewer may see it, step by step in the session
    (the facts, then the matters): the reference `read_request` and `pending_queue` are tested
    against."""
    loaded = await load_enterprise_rows(session, row["enterprise_uscc"], row["window_start"].year)
    if loaded is None:
        return None
    matters = await _load_matters(session, list(row["matters"]))
    return _precheck(
        loaded, viewer, row, frozenset(m["category"] for m in matters.values()), settings
    )


# The approvers' queue page in one round trip: the pending requests the viewer may see, oldest
# first, each with its facts, instead of two statements per row.
_PENDING_QUEUE = (
    _requests_with_facts("c.enterprise_uscc")
    + "WHERE c.status = 'pending' AND ($1::text IS NULL OR c.agency_code = $1::text) "
    "ORDER BY c.created_at, c.id LIMIT $2::int"
)


async def pending_queue(
    conn: DriverConnection, viewer: Principal, *, settings: Settings, limit: int
) -> tuple[list[RequestView], bool]:
    """The pending requests oldest first, each with its pre-check as the viewer may see it, in
    one statement; and whether more are waiting. Agency roles see their own agency's only, as
    `list_requests` scopes them. ``conn`` is a driver connection (the page's, in its session)."""
    agency = None if viewer.sees_everything else viewer.agency_code
    rows = await conn.fetch(_PENDING_QUEUE, agency, max(1, min(limit, MAX_LIMIT)) + 1)
    return [_view_with_facts(row, viewer, settings) for row in rows[:limit]], len(rows) > limit


async def list_requests(
    session: AsyncSession,
    viewer: Principal,
    *,
    status: str | None,
    agency: str | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[RowMapping], str | None]:
    """Requests oldest first; agency roles see only their own agency's."""
    limit = max(1, min(limit, MAX_LIMIT))
    if not viewer.sees_everything:
        if agency is not None:
            viewer.ensure_agency(agency)
        agency = viewer.agency_code
    stmt = select(T).order_by(T.c.created_at, T.c.id).limit(limit + 1)
    if status:
        stmt = stmt.where(T.c.status == status)
    if agency:
        stmt = stmt.where(T.c.agency_code == agency)
    after = decode_cursor(cursor)
    if after:
        try:
            at, last_id = datetime.fromisoformat(str(after[0])), int(after[1])
        except (ValueError, IndexError, TypeError) as exc:
            raise ValidationFailed(
                "The cursor is not valid.", errors=[_err("cursor", "malformed")]
            ) from exc
        stmt = stmt.where(or_(T.c.created_at > at, and_(T.c.created_at == at, T.c.id > last_id)))
    rows = list((await session.execute(stmt)).mappings())
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor([last["created_at"].isoformat(), last["id"]])
    return rows[:limit], next_cursor


def _already_final(row: RowMapping) -> Conflict:
    """409 naming who ended the request and when (same agency's officials only get here)."""
    status = row["status"]
    if row["decided_at"] is not None:
        who = row["decided_by_name"] or "an official"
        when = row["decided_at"].astimezone(SHANGHAI).isoformat(timespec="seconds")
        detail = f"Check request {row['id']} was already {status} by {who} at {when}."
    else:
        detail = f"Check request {row['id']} is already {status}; it can no longer be decided."
    return Conflict(
        detail,
        current_status=status,
        decided_at=row["decided_at"].isoformat() if row["decided_at"] else None,
        decided_by=row["decided_by_name"],
    )


_DECIDE = text(
    """
    UPDATE check_request
    SET status = :to, version = version + 1, decided_by = :uid, decided_by_name = :uname,
        decided_at = :now, decision_comment = :comment, updated_at = :now
    WHERE enterprise_uscc = :uscc AND id = :id AND status = 'pending' AND version = :version
    RETURNING *
    """
)


def _check_decision(
    actor: Principal,
    row: Mapping[Any, Any],
    action: Action,
    comment: str | None,
    if_match: int | None,
) -> None:
    """The rules a decision passes before any write: 403 (agency, self-approval, someone
    else's withdrawal), 422 (rejection without a comment), 409 (final), 412 (stale If-Match)."""
    actor.ensure_agency(row["agency_code"])
    if action is Action.withdraw:
        if actor.user_id != row["requester_id"]:
            raise Forbidden("Only the official who filed a request may withdraw it.")
    elif actor.user_id == row["requester_id"]:
        raise Forbidden("An approver may not decide a check request they filed themselves.")
    if action is Action.reject and not (comment or "").strip():
        raise ValidationFailed(
            "A rejection needs a comment.", errors=[_err("comment", "required to reject")]
        )
    if row["status"] != PENDING:
        raise _already_final(cast(RowMapping, row))
    if if_match is not None and if_match != row["version"]:
        raise PreconditionFailed(
            f"Check request {row['id']} is at version {row['version']}, not {if_match}."
        )


def _decision_payload(
    decided: Mapping[Any, Any],
    actor: Principal,
    now: datetime,
    comment: str | None,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """The audit `after` and event payload of a decision (see docs/events.md)."""
    return _payload(cast(RowMapping, decided)) | {
        "decided_by": actor.user_id,
        "decided_by_name": actor.display_name,
        "decided_at": now.isoformat(),
        "comment": comment,
        **extra,
    }


async def decide(
    session: AsyncSession,
    actor: Principal,
    request_id: int,
    action: Action,
    *,
    comment: str | None,
    if_match: int | None,
    settings: Settings,
    now: datetime | None = None,
) -> Mapping[Any, Any]:
    """Approve, reject or withdraw exactly once, in the session's transaction.

    Most decisions are `decide_at_once` on the session's connection; rejecting or withdrawing
    an emergency request also cancels its inspection, step by step (`_decide_in_session`).
    """
    now = now or utcnow()
    decided = await decide_at_once(
        await driver_connection(session),
        actor,
        request_id,
        action,
        comment=comment,
        if_match=if_match,
        settings=settings,
        now=now,
    )
    if decided is not None:
        return decided
    return await _decide_in_session(
        session,
        actor,
        request_id,
        action,
        comment=comment,
        if_match=if_match,
        settings=settings,
        now=now,
    )


async def _decide_in_session(
    session: AsyncSession,
    actor: Principal,
    request_id: int,
    action: Action,
    *,
    comment: str | None,
    if_match: int | None,
    settings: Settings,
    now: datetime,
) -> RowMapping:
    """Approve, reject or withdraw exactly once: one conditional UPDATE on status and version.

    Approval creates the unplanned inspection in the same transaction; rejecting or withdrawing
    an emergency request cancels its inspection. 403 for another agency or self-approval, 409
    when the request is no longer pending, 412 on a stale If-Match.
    """
    row = await _row_by_id(session, request_id)
    _check_decision(actor, row, action, comment, if_match)
    target = next_status(row["status"], action)
    decided = (
        (
            await session.execute(
                _DECIDE,
                {
                    "to": target.value,
                    "uid": actor.user_id,
                    "uname": actor.display_name,
                    "now": now,
                    "comment": comment,
                    "uscc": row["enterprise_uscc"],
                    "id": request_id,
                    "version": row["version"] if if_match is None else if_match,
                },
            )
        )
        .mappings()
        .first()
    )
    if decided is None:  # lost a race: someone decided between our read and our update
        current = await _row_by_id(session, request_id)
        if current["status"] != PENDING:
            raise _already_final(current)
        raise PreconditionFailed(
            f"Check request {request_id} is at version {current['version']}, "
            f"not {if_match if if_match is not None else row['version']}."
        )
    extra: dict[str, Any] = {}
    if action is Action.approve and not row["emergency"]:
        inspection = await create_inspection(
            session,
            actor,
            keyring=keyring_for(settings.data_dir),
            enterprise_uscc=row["enterprise_uscc"],
            agency_code=row["agency_code"],
            kind="unplanned",
            matter_codes=list(row["matters"]),
            window_start=row["window_start"],
            window_end=row["window_end"],
            check_request_id=request_id,
            basis=row["basis"],
            emergency=False,
        )
        decided = await _set_inspection(session, decided, inspection.id)
    elif action is not Action.approve and row["emergency"] and row["inspection_id"] is not None:
        extra["inspection"] = await _cancel_emergency_inspection(session, actor, decided, action)

    payload = _decision_payload(decided, actor, now, comment, extra)
    await record(
        session,
        actor,
        f"check_request.{action.value}",
        "check_request",
        request_id,
        before={"status": row["status"], "version": row["version"]},
        after=payload,
    )
    await emit(
        session,
        DECISION_EVENTS[action],
        request_id,
        payload,
        enterprise_uscc=row["enterprise_uscc"],
        agency_codes=[row["agency_code"]],
    )
    return decided


# --- a decision in one statement ---------------------------------------------------------------

_DECISION_READ = """
SELECT c.*,
       CASE WHEN $2::boolean AND c.status = 'pending' AND NOT c.emergency
            THEN nextval('inspection_id_seq') END AS next_inspection_id,
       m.codes AS matter_codes, m.agencies AS matter_agencies, m.categories AS matter_categories
FROM check_request c
LEFT JOIN LATERAL (
    SELECT array_agg(m.code) AS codes, array_agg(m.agency_code) AS agencies,
           array_agg(m.category) AS categories
    FROM matter m WHERE m.code = ANY (c.matters)
) m ON $2::boolean
WHERE c.id = $1
"""
"""The request, the id of the inspection an approval will create (allocated ahead, so that its
code can be signed before the write) and the request's matters, in one read."""

_DECISION_WRITE = """
WITH decided AS (
    UPDATE check_request
    SET status = $4, version = version + 1, decided_by = $5, decided_by_name = $6,
        decided_at = $7, decision_comment = $8, updated_at = $7,
        inspection_id = coalesce($9::bigint, inspection_id)
    WHERE enterprise_uscc = $1 AND id = $2 AND status = 'pending' AND version = $3
    RETURNING enterprise_uscc, id, agency_code, window_start, window_end, basis
), scheduled AS (
    INSERT INTO inspection (enterprise_uscc, id, kind, status, agency_code, year, window_start,
                            window_end, check_request_id, basis, emergency, version, code)
    SELECT d.enterprise_uscc, $9::bigint, 'unplanned', 'scheduled', d.agency_code,
           extract(year FROM d.window_start)::smallint, d.window_start, d.window_end, d.id,
           d.basis, false, 1, $10
    FROM decided d
    WHERE $9::bigint IS NOT NULL
    RETURNING enterprise_uscc, id
), scheduled_matters AS (
    INSERT INTO inspection_matter (enterprise_uscc, inspection_id, matter_code, agency_code,
                                   category)
    SELECT s.enterprise_uscc, s.id, m.code, m.agency_code, m.category
    FROM scheduled s JOIN matter m ON m.code = ANY ($11::varchar[])
), audited AS (
    INSERT INTO audit_log (actor_id, actor_name, role, action, object_type, object_id,
                           before, after, request_id)
    SELECT $12, $13, $14, a.action, a.object_type, a.object_id, a.before, a.after, $15
    FROM decided,
         (VALUES (1, $16::text, 'inspection', $9::bigint::text, NULL::jsonb, $17::jsonb),
                 (2, $18::text, 'check_request', $2::bigint::text, $19::jsonb, $20::jsonb))
             AS a(k, action, object_type, object_id, before, after)
    WHERE a.object_id IS NOT NULL
    ORDER BY a.k
), emitted AS (
    INSERT INTO event (type, type_version, aggregate_type, aggregate_id, aggregate_seq,
                       enterprise_uscc, agency_codes, payload, commit_order)
    SELECT e.type, e.version, e.agg_type, e.agg_id, coalesce(p.aggregate_seq, 0) + 1,
           d.enterprise_uscc, e.agencies, e.payload,
           greatest((pg_current_xact_id()::text)::bigint, coalesce(p.commit_order, 0))
    FROM decided d
    CROSS JOIN (VALUES (1, $21::text, $22::int, $23::text, $9::bigint::text, $24::varchar[],
                        $17::jsonb),
                       (2, $25::text, $26::int, $27::text, $2::bigint::text, $28::varchar[],
                        $20::jsonb))
        AS e(k, type, version, agg_type, agg_id, agencies, payload)
    LEFT JOIN LATERAL (
        SELECT x.aggregate_seq, x.commit_order FROM event x
        WHERE x.aggregate_type = e.agg_type AND x.aggregate_id = e.agg_id
        ORDER BY x.aggregate_seq DESC LIMIT 1
    ) p ON true
    WHERE e.agg_id IS NOT NULL
    ORDER BY e.k
)
SELECT d.id FROM decided d
"""
"""The decision and everything it writes, as one statement: the conditional UPDATE (exactly
once: only a pending request at the expected version changes), the approval's inspection with
its matters and signed code, the audit rows and the outbox events (aggregate sequence and
commit order as `events.outbox.emit` assigns them; the `event_notify` trigger wakes the
workers). Every insert reads from the UPDATE's result, so a decision that lost a race writes
nothing at all.

The audit rows and events sit in fixed slots (the inspection's, when there is one, then the
decision's) rather than in arrays: PostgreSQL can then keep one generic plan for the statement
instead of planning it on every execution (a third of its cost)."""


@lru_cache(maxsize=4)
def _code_keyring(data_dir: Path) -> CodeKeyring:
    # keyring_for resolves the path on every call (file-system work per request)
    return keyring_for(data_dir)


def _json(value: dict[str, Any] | None) -> str | None:
    # For jsonb parameters: PostgreSQL keeps values, not text, so the compact form of
    # pydantic-core's encoder (a quarter of json.dumps's time) stores exactly what json.dumps
    # would. The payloads hold only JSON types: dates and times are already ISO strings.
    return None if value is None else to_json(value).decode()


async def decide_at_once(
    conn: DriverConnection,
    actor: Principal,
    request_id: int,
    action: Action,
    *,
    comment: str | None,
    if_match: int | None,
    settings: Settings,
    now: datetime | None = None,
) -> Mapping[Any, Any] | None:
    """Approve, reject or withdraw exactly once: one read, then one statement.

    `conn` is a driver connection, in autocommit (the statement is then its own transaction) or
    inside a session's transaction. The rules are `decide`'s: 403 for another agency or
    self-approval, 409 when no longer pending, 412 on a stale If-Match; approval creates the
    unplanned inspection. Returns the decided row, or None when the decision must also cancel
    an emergency request's inspection: that one goes through `decide`.
    """
    if request_id.bit_length() > 63:  # no bigint id is that large
        raise NotFound(f"Check request {request_id} does not exist.")
    now = now or utcnow()
    approving = action is Action.approve
    row = await conn.fetchrow(_DECISION_READ, request_id, approving)
    if row is None:
        raise NotFound(f"Check request {request_id} does not exist.")
    _check_decision(actor, row, action, comment, if_match)
    if not approving and row["emergency"] and row["inspection_id"] is not None:
        return None
    target = next_status(row["status"], action)
    inspection_id: int | None = row["next_inspection_id"]
    # The row the conditional UPDATE writes (it only matches this version of the row): the
    # answer is built from it, so the statement returns only the id (no row to decode).
    decided = dict(row) | {
        "status": target.value,
        "version": row["version"] + 1,
        "decided_by": actor.user_id,
        "decided_by_name": actor.display_name,
        "decided_at": now,
        "decision_comment": comment,
        "updated_at": now,
        "inspection_id": inspection_id if inspection_id is not None else row["inspection_id"],
    }
    code = scheduled_json = None
    agencies: list[str] = []
    if inspection_id is not None:
        codes = list(row["matters"])
        matters = {  # code: (agency, category)
            c: (a, k)
            for c, a, k in zip(
                row["matter_codes"] or (),
                row["matter_agencies"] or (),
                row["matter_categories"] or (),
                strict=True,
            )
        }
        missing = [c for c in codes if c not in matters]
        if missing:
            raise ValidationFailed(
                "Unknown matter(s): " + ", ".join(missing),
                errors=[{"field": "matters", "detail": f"unknown matter {c}"} for c in missing],
            )
        code = _code_keyring(settings.data_dir).issue(
            inspection_id=inspection_id,
            agency_code=row["agency_code"],
            uscc=row["enterprise_uscc"],
            window_start=row["window_start"],
            window_end=row["window_end"],
        )
        agencies = sorted({matters[c][0] for c in codes})
        scheduled_json = _json(  # inspections.service.scheduled_payload of this inspection
            {
                "inspection_id": inspection_id,
                "enterprise": row["enterprise_uscc"],
                "agency": row["agency_code"],
                "agencies": agencies,
                "kind": "unplanned",
                "basis": row["basis"],
                "emergency": False,
                "matters": codes,
                "categories": sorted({matters[c][1] for c in codes}),
                "window_start": row["window_start"].isoformat(),
                "window_end": row["window_end"].isoformat(),
                "inspectors": [],
                "plan_id": None,
                "check_request_id": request_id,
            }
        )
    decision = DECISION_EVENTS[action]
    try:
        decided_id = await conn.fetchval(
            _DECISION_WRITE,
            row["enterprise_uscc"],
            request_id,
            row["version"],
            target.value,
            actor.user_id,
            actor.display_name,
            now,
            comment,
            inspection_id,
            code,
            row["matters"],
            actor.user_id,
            actor.username,
            actor.role.value,
            request_id_var.get(),
            "inspection.schedule",
            scheduled_json,
            f"check_request.{action.value}",
            _json({"status": row["status"], "version": row["version"]}),
            _json(_decision_payload(decided, actor, now, comment, {})),
            ev.INSPECTION_SCHEDULED.name,
            ev.INSPECTION_SCHEDULED.version,
            ev.INSPECTION_SCHEDULED.aggregate,
            agencies,
            decision.name,
            decision.version,
            decision.aggregate,
            [row["agency_code"]],
        )
    except asyncpg.DataError as exc:  # a value PostgreSQL cannot hold (NUL in the comment)
        raise ValidationFailed(
            "A value in the request cannot be stored (out of range or NUL).",
            errors=[_err("comment", "cannot be stored")],
        ) from exc
    if decided_id is None:  # lost a race: someone decided between our read and our update
        current = await conn.fetchrow("SELECT * FROM check_request WHERE id = $1", request_id)
        if current["status"] != PENDING:
            raise _already_final(current)
        raise PreconditionFailed(
            f"Check request {request_id} is at version {current['version']}, not {row['version']}."
        )
    return decided


async def _cancel_emergency_inspection(
    session: AsyncSession, actor: Principal | None, row: RowMapping, action: Action
) -> dict[str, Any]:
    """Cancel the inspection scheduled for an emergency that was rejected or withdrawn."""
    i = cast(Table, Inspection.__table__)
    cancelled = (
        await session.execute(
            update(i)
            .where(
                i.c.enterprise_uscc == row["enterprise_uscc"],
                i.c.id == row["inspection_id"],
                i.c.status == InspectionStatus.scheduled.value,
            )
            .values(
                status=InspectionStatus.cancelled.value,
                version=i.c.version + 1,
                updated_at=text("now()"),
            )
            .returning(i.c.id, i.c.status)
        )
    ).first()
    if cancelled is None:
        # Already started or finished: the record stays; the decision says so.
        current = (
            await session.execute(
                select(i.c.status).where(
                    i.c.enterprise_uscc == row["enterprise_uscc"], i.c.id == row["inspection_id"]
                )
            )
        ).scalar_one()
        return {"id": row["inspection_id"], "cancelled": False, "status": current}
    payload = {
        "inspection_id": row["inspection_id"],
        "enterprise": row["enterprise_uscc"],
        "agency": row["agency_code"],
        "reason": f"emergency check request {row['id']} {PAST_TENSE[action]}",
        "check_request_id": row["id"],
    }
    await record(
        session,
        actor,
        "inspection.cancel",
        "inspection",
        row["inspection_id"],
        before={"status": InspectionStatus.scheduled.value},
        after=payload | {"status": InspectionStatus.cancelled.value},
    )
    await emit(
        session,
        ev.INSPECTION_CANCELLED,
        row["inspection_id"],
        payload,
        enterprise_uscc=row["enterprise_uscc"],
        agency_codes=[row["agency_code"]],
    )
    return {"id": row["inspection_id"], "cancelled": True, "status": "cancelled"}


@dataclass
class DeadlineReport:
    """What one deadline sweep did (request ids)."""

    escalated: list[int] = field(default_factory=list)
    expired: list[int] = field(default_factory=list)
    emergency_unapproved: list[int] = field(default_factory=list)


_ESCALATE = text(
    """
    WITH due AS (
        SELECT enterprise_uscc, id FROM check_request
        WHERE status = 'pending' AND decision_due_at < :now AND escalated_at IS NULL
        ORDER BY decision_due_at LIMIT :batch
        FOR UPDATE SKIP LOCKED
    )
    UPDATE check_request c SET escalated_at = :now, updated_at = :now
    FROM due
    WHERE c.enterprise_uscc = due.enterprise_uscc AND c.id = due.id
      AND c.status = 'pending' AND c.escalated_at IS NULL
    RETURNING c.*
    """
)
_EXPIRE = text(
    """
    WITH due AS (
        SELECT enterprise_uscc, id FROM check_request
        WHERE status = 'pending' AND decision_due_at < :now AND expires_at < :now
        ORDER BY expires_at LIMIT :batch
        FOR UPDATE SKIP LOCKED
    )
    UPDATE check_request c SET status = 'expired', version = c.version + 1, updated_at = :now
    FROM due
    WHERE c.enterprise_uscc = due.enterprise_uscc AND c.id = due.id AND c.status = 'pending'
    RETURNING c.*
    """
)
_EMERGENCY = text(
    """
    WITH due AS (
        SELECT enterprise_uscc, id FROM check_request
        WHERE status = 'pending' AND emergency
          AND emergency_due_at < :now AND emergency_flagged_at IS NULL
        LIMIT :batch
        FOR UPDATE SKIP LOCKED
    )
    UPDATE check_request c SET emergency_flagged_at = :now, updated_at = :now
    FROM due
    WHERE c.enterprise_uscc = due.enterprise_uscc AND c.id = due.id
      AND c.status = 'pending' AND c.emergency_flagged_at IS NULL
    RETURNING c.*
    """
)


async def _announce(
    session: AsyncSession,
    row: RowMapping,
    event_type: ev.EventType,
    action: str,
    payload: dict[str, Any],
    before: dict[str, Any] | None = None,
) -> None:
    """A system change of a request: its audit row and its event, in one statement."""
    await emit(
        session,
        event_type,
        row["id"],
        payload,
        enterprise_uscc=row["enterprise_uscc"],
        agency_codes=[row["agency_code"]],
        audit=AuditEntry(
            None, f"check_request.{action}", "check_request", row["id"], before, payload
        ),
    )


async def run_deadlines(
    session: AsyncSession, now: datetime, *, batch: int = 500
) -> DeadlineReport:
    """Escalate overdue requests, expire long-overdue ones, flag unapproved emergencies.

    Each happens exactly once per request however many replicas sweep at once: rows are claimed
    with SKIP LOCKED and changed only while still in the state that calls for the change.
    """
    report = DeadlineReport()
    params = {"now": now, "batch": batch}
    for row in (await session.execute(_ESCALATE, params)).mappings():
        report.escalated.append(int(row["id"]))
        payload = _payload(row) | {
            "escalated_at": now.isoformat(),
            "expires_at": row["expires_at"].isoformat(),
            "to": "supervisors",
        }
        await _announce(session, row, ev.CHECK_REQUEST_ESCALATED, "escalate", payload)
    for row in (await session.execute(_EMERGENCY, params)).mappings():
        report.emergency_unapproved.append(int(row["id"]))
        payload = _payload(row) | {
            "reason": "emergency_unapproved",
            "emergency_due_at": row["emergency_due_at"].isoformat(),
            "flagged_at": now.isoformat(),
        }
        await _announce(
            session, row, ev.CHECK_REQUEST_EMERGENCY_UNAPPROVED, "emergency_unapproved", payload
        )
    for row in (await session.execute(_EXPIRE, params)).mappings():
        report.expired.append(int(row["id"]))
        payload = _payload(row) | {"expired_at": now.isoformat()}
        before = {"status": PENDING, "version": row["version"] - 1}
        await _announce(session, row, ev.CHECK_REQUEST_EXPIRED, "expire", payload, before)
    return report
