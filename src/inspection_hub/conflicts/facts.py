"""The one loader of the facts the conflict rules run on: one round trip per enterprise.

Shared by the event-driven detector (conflicts/service.py, with the per-enterprise lock) and the
check-request pre-check (approvals/precheck.py). Everything comes from the SQL function
``conflict_facts`` (migration 0005_conflicts, which documents the query and its indexes): the
enterprise, its inspections in a window_start range (with matters, categories, agencies,
inspectors), optionally its pending check requests, and the inspector bookings at other
enterprises on the candidates' booked days. The check-request submission reads the same columns
through ``precheck_facts`` (migration 0012): the pre-check's subset, with no lock or bookings,
inlined into the submission's one statement.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, cast

from pydantic_core import from_json
from sqlalchemy import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from inspection_hub.conflicts.rules import EnterpriseFact, InspectionFact, InspectionStatus
from inspection_hub.policy import RISK_CLASSES, RiskClass

#: How far back the detector looks (repeat windows, the previous inspector, the cap year).
HISTORY_YEARS = 3
# Pre-check: inspections whose dates come within this many days of the year, so that repeat
# windows (default 180 days) and merge windows reaching across New Year are seen.
LOOKAROUND_DAYS = 366
# Planned windows are never longer than a year: a lower bound on window_start lets the
# (enterprise_uscc, window_start) index do the work.
MAX_WINDOW_DAYS = 366

_FACTS_SQL = (
    "SELECT * FROM conflict_facts($1::bpchar, $2::date, $3::date, $4::date, $5::boolean, "
    "$6::bigint[], $7::boolean, $8::bigint[], $9::date, $10::text, $11::text)"
)


@dataclass(frozen=True, slots=True)
class InspectionRow:
    """An inspection as loaded, with what the facts leave out (matters, outcome)."""

    fact: InspectionFact
    matters: tuple[str, ...]
    outcome: str | None
    check_request_id: int | None
    emergency: bool
    #: Its lead agency and its matters' agencies.
    agencies: frozenset[str]


@dataclass(frozen=True, slots=True)
class EnterpriseFacts:
    """Everything the rules need about one enterprise, plus the rows for presentation."""

    enterprise: EnterpriseFact
    inspections: list[InspectionRow]
    #: Pending non-emergency check requests as ``pending_request`` facts (id = -request id).
    requests: list[InspectionFact]
    #: Inspections at other enterprises sharing an inspector on a candidate's booked day.
    bookings: list[InspectionFact]

    @property
    def history(self) -> list[InspectionFact]:
        """The inspections as rule facts, by id."""
        return [r.fact for r in self.inspections]

    @property
    def agencies(self) -> dict[int, frozenset[str]]:
        """Every inspection's agencies (its lead agency and its matters' agencies)."""
        return {r.fact.id: r.agencies for r in self.inspections}

    @property
    def facts(self) -> list[InspectionFact]:
        """Inspections and pending (non-emergency) requests, as rule facts."""
        return self.history + self.requests


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value is not None else None


def _fact(row: dict[str, Any], uscc: str) -> InspectionFact:
    return InspectionFact(
        id=int(row["id"]),
        agency_code=row["agency_code"],
        uscc=row.get("enterprise_uscc") or uscc,
        premises_id=row["premises_id"],
        categories=frozenset(row["categories"]),
        kind=row["kind"],
        basis=row["basis"],
        status=cast(InspectionStatus, row["status"]),
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


async def load_facts(
    session: AsyncSession,
    uscc: str,
    since: date,
    *,
    until: date | None = None,
    ends_after: date | None = None,
    requests: bool = False,
    candidate_ids: Iterable[int] = (),
    all_live: bool = False,
    probe: InspectionFact | None = None,
    lock_namespace: str | None = None,
) -> EnterpriseFacts | None:
    """The enterprise and its facts in one query; None if the enterprise is unknown.

    Inspections (any status) with ``since <= window_start <= until`` (no upper bound when
    ``until`` is None) and, with ``ends_after``, ending (visit date, else window end) on or after
    it; with ``requests``, the pending non-emergency check requests in the same bounds.
    Bookings are loaded for the inspections ``candidate_ids``, every live one when ``all_live``,
    and ``probe`` (a candidate not stored yet: its inspectors on its booked day). With
    ``lock_namespace``, first takes the advisory lock ``xact_lock(session, lock_namespace, uscc)``
    would, and reads the facts after it is granted (same round trip).
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
            until,
            ends_after,
            requests,
            sorted(set(candidate_ids)),
            all_live,
            inspectors,
            day if inspectors else None,
            lock_namespace,
            uscc if lock_namespace is not None else None,
        ),
    )
    row = result.mappings().one_or_none()
    return None if row is None else _parse_facts(row)


def _parse_facts(row: RowMapping | Mapping[str, Any]) -> EnterpriseFacts:
    key = row["uscc"]
    inspections = [
        InspectionRow(
            fact=_fact(r, key),
            matters=tuple(r["matters"]),
            outcome=r["outcome"],
            check_request_id=r["check_request_id"],
            emergency=bool(r["emergency"]),
            agencies=frozenset({r["agency_code"], *r["agencies"]}),
        )
        for r in from_json(row["history"] or "[]")
    ]
    pending = [
        request_fact(
            int(r["id"]),
            agency_code=r["agency_code"],
            uscc=key,
            categories=frozenset(r["categories"]),
            basis=r["basis"],
            window_start=date.fromisoformat(r["window_start"]),
            window_end=date.fromisoformat(r["window_end"]),
        )
        for r in from_json(row["requests"] or "[]")
    ]
    bookings = [_fact(r, key) for r in from_json(row["bookings"] or "[]")]
    risk = tuple(zip(row["since"], (_risk(c) for c in row["classes"]), strict=True))
    if not risk:  # no history recorded: the current class has always held
        risk = ((date(1900, 1, 1), _risk(row["risk_class"])),)
    enterprise = EnterpriseFact(uscc=key, risk_classes=risk, established_on=row["established_on"])
    return EnterpriseFacts(enterprise, inspections, pending, bookings)


def history_start(year: int) -> date:
    """First day the detector looks at for a candidate in ``year``."""
    return date(year - HISTORY_YEARS, 1, 1)


async def load_enterprise(session: AsyncSession, uscc: str) -> EnterpriseFact | None:
    """The enterprise as a rule fact (risk class history, founding date), or None if unknown."""
    loaded = await load_facts(session, uscc, date.max)
    return loaded.enterprise if loaded is not None else None


async def load_enterprise_rows(
    session: AsyncSession, uscc: str, year: int
) -> EnterpriseFacts | None:
    """Pre-check: the enterprise, its inspections near `year`, its pending requests; or None.

    Through ``precheck_facts`` (what ``conflict_facts`` returns for these bounds, without its
    lock and bookings: migration 0012), in the session's transaction.
    """
    conn = await session.connection()
    result = await conn.exec_driver_sql(_PRECHECK_FACTS_SQL, (uscc, *submission_bounds(year)))
    row = result.mappings().one_or_none()
    return None if row is None else _parse_facts(row)


_PRECHECK_FACTS_SQL = "SELECT * FROM precheck_facts($1::bpchar, $2::date, $3::date, $4::date)"


def enterprise_rows_call(uscc: str, year: str) -> str:
    """``load_enterprise_rows``' facts as a ``precheck_facts(...)`` call over two SQL
    expressions, ``uscc`` (bpchar; NULL loads nothing) and ``year`` (integer), for a statement
    that joins it LATERAL to the row it reads those from; ``facts_of`` parses its columns. The
    bounds are ``submission_bounds(year)``'s, computed in SQL."""
    lo = f"make_date({year}, 1, 1) - {LOOKAROUND_DAYS}"
    return (
        f"precheck_facts({uscc}, {lo} - {MAX_WINDOW_DAYS}, "
        f"make_date({year}, 12, 31) + {LOOKAROUND_DAYS}, {lo})"
    )


# The submission's reads in one round trip: the listed matters (always one row, so an unknown
# enterprise still reports the matters) and, when a well-formed USCC was given, the enterprise's
# facts around the year exactly as load_enterprise_rows loads them.
_SUBMISSION_SQL = (
    "SELECT m.matters, nextval('check_request_id_seq') AS new_request_id, "
    "f.* FROM (SELECT json_agg(json_build_array(code, agency_code, category)) "
    "AS matters FROM matter WHERE code = ANY($5::varchar[])) m "
    "LEFT JOIN LATERAL precheck_facts($1::bpchar, $2::date, $3::date, $4::date) f "
    "ON $1::bpchar IS NOT NULL"
)


@dataclass(frozen=True, slots=True)
class MatterRow:
    """A matter as the submission needs it."""

    code: str
    agency_code: str
    category: str


@dataclass(frozen=True, slots=True)
class SubmissionRows:
    """What a check-request submission reads before it writes."""

    facts: EnterpriseFacts | None
    matters: dict[str, MatterRow]
    request_id: int


def submission_bounds(year: int) -> tuple[date, date, date]:
    """The pre-check's since, until and ends_after (``precheck_facts``' bounds) for a request in
    ``year``."""
    lo = date(year, 1, 1) - timedelta(days=LOOKAROUND_DAYS)
    hi = date(year, 12, 31) + timedelta(days=LOOKAROUND_DAYS)
    return lo - timedelta(days=MAX_WINDOW_DAYS), hi, lo


def matters_of(raw: Any) -> dict[str, MatterRow]:
    """The matters read by code, from their JSON array of [code, agency_code, category]."""
    listed = from_json(raw) if isinstance(raw, str | bytes) else (raw or [])
    return {c: MatterRow(c, a, k) for c, a, k in listed}


def facts_of(row: RowMapping | Mapping[str, Any]) -> EnterpriseFacts | None:
    """The enterprise's facts from a row carrying ``conflict_facts``' columns (None: unknown)."""
    return _parse_facts(row) if row["uscc"] is not None else None


async def load_submission_rows(
    session: AsyncSession, uscc: str | None, year: int, matter_codes: Iterable[str]
) -> SubmissionRows:
    """A check request's reads in one statement: its matters by code, the enterprise's facts as
    ``load_enterprise_rows`` returns them (None when ``uscc`` is None or unknown), and a new
    request id from the table's sequence (unused, like any sequence value, if the request is
    refused), so the request, its event and its audit row can be written by one statement."""
    conn = await session.connection()
    result = await conn.exec_driver_sql(
        _SUBMISSION_SQL, (uscc, *submission_bounds(year), sorted(set(matter_codes)))
    )
    row = result.mappings().one()
    return SubmissionRows(facts_of(row), matters_of(row["matters"]), int(row["new_request_id"]))


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
