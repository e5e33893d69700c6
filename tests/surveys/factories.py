"""Test data built directly in the database: enterprises, inspectors, completed inspections."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, Literal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from inspection_hub.inspections.service import create_inspection, keyring_for
from inspection_hub.kit.synth import make_uscc

_serial = iter(range(1, 10**6))


async def enterprise(session: AsyncSession, callback_url: str | None = None) -> str:
    """A new enterprise; returns its uscc."""
    uscc = make_uscc("350102", next(_serial))
    await session.execute(
        text(
            "INSERT INTO enterprise (uscc, name, district_code, industry_code, risk_class, "
            "callback_url) VALUES (:u, :n, '350102', '5211', 'B', :cb)"
        ),
        {"u": uscc, "n": f"企业{uscc[-4:]}", "cb": callback_url},
    )
    return uscc


async def inspector(session: AsyncSession, agency: str, valid_until: date) -> int:
    """A new inspector of an agency; returns the id."""
    n = next(_serial)
    return int(
        (
            await session.execute(
                text(
                    "INSERT INTO inspector (agency_code, name, certificate_no, "
                    "certificate_valid_until) VALUES (:a, :n, :c, :v) RETURNING id"
                ),
                {"a": agency, "n": f"检查员{n}", "c": f"CERT-{n}", "v": valid_until},
            )
        ).scalar_one()
    )


async def check_request(
    session: AsyncSession,
    *,
    uscc: str,
    agency: str = "SCJG",
    status: str = "approved",
    emergency: bool = False,
    submitted_at: datetime = datetime(2026, 3, 5, 1, 0, tzinfo=UTC),
    decided_at: datetime | None = datetime(2026, 3, 6, 1, 0, tzinfo=UTC),
) -> int:
    """A check request written directly (decided as given); returns its id."""
    n = next(_serial)
    requester = (
        await session.execute(
            text(
                "INSERT INTO user_account (username, display_name, role, agency_code) "
                "VALUES (:u, :u, 'scheduler', :a) RETURNING id"
            ),
            {"u": f"requester{n}", "a": agency},
        )
    ).scalar_one()
    return int(
        (
            await session.execute(
                text(
                    """
                INSERT INTO check_request (enterprise_uscc, agency_code, requester_id,
                    requester_name, matters, basis, window_start, window_end, emergency, status,
                    policy_version, submitted_at, decision_due_at, expires_at, emergency_due_at,
                    decided_at)
                VALUES (:u, :a, :r, 'requester', '{SCJG-001}', :basis, '2026-03-01',
                    '2026-03-31', :e, :s, 'test', CAST(:sub AS timestamptz),
                    CAST(:sub AS timestamptz) + interval '3 days',
                    CAST(:sub AS timestamptz) + interval '10 days',
                    CASE WHEN CAST(:e AS boolean)
                         THEN CAST(:sub AS timestamptz) + interval '24 hours' END,
                    CAST(:dec AS timestamptz))
                RETURNING id
                """
                ),
                {
                    "u": uscc,
                    "a": agency,
                    "r": requester,
                    "basis": "incident" if emergency else "complaint",
                    "e": emergency,
                    "s": status,
                    "sub": submitted_at,
                    "dec": decided_at,
                },
            )
        ).scalar_one()
    )


async def completed_inspection(
    session: AsyncSession,
    settings: Any,
    *,
    uscc: str,
    agency: str = "SCJG",
    matter: str = "SCJG-001",
    kind: str = "unplanned",
    window: tuple[date, date] = (date(2026, 3, 1), date(2026, 3, 31)),
    visit_date: date | None = date(2026, 3, 10),
    inspectors: list[tuple[int, bool]] | None = None,
    completed_at: datetime | None = None,
    outcome: str | None = "no_issue",
    scanned: bool = True,
    check_request_id: int | Literal["approved"] | None = "approved",
) -> int:
    """A completed inspection with inspectors present as given; returns its id.

    An unplanned one gets, by default, a request approved before the visit.
    """
    if check_request_id == "approved":
        check_request_id = (
            await check_request(session, uscc=uscc, agency=agency) if kind == "unplanned" else None
        )
    insp = await create_inspection(
        session,
        None,
        keyring=keyring_for(settings.data_dir),
        enterprise_uscc=uscc,
        agency_code=agency,
        kind=kind,
        matter_codes=[matter],
        window_start=window[0],
        window_end=window[1],
        inspector_ids=[i for i, _ in inspectors or []],
        check_request_id=check_request_id if kind == "unplanned" else None,
    )
    for inspector_id, present in inspectors or []:
        await session.execute(
            text(
                "UPDATE inspection_inspector SET present = :p WHERE enterprise_uscc = :u "
                "AND inspection_id = :i AND inspector_id = :x"
            ),
            {"p": present, "u": uscc, "i": insp.id, "x": inspector_id},
        )
    await session.execute(
        text(
            "UPDATE inspection SET status = 'completed', visit_date = :v, completed_at = :c, "
            "outcome = :o, "
            "code_scanned_at = CASE WHEN :s THEN CAST(:c AS timestamptz) ELSE NULL END "
            "WHERE enterprise_uscc = :u AND id = :i"
        ),
        {
            "v": visit_date,
            "c": completed_at or datetime(2026, 3, 10, 8, 0, tzinfo=UTC),
            "o": outcome,
            "s": scanned,
            "u": uscc,
            "i": insp.id,
        },
    )
    return int(insp.id)
