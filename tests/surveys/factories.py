"""Test data built directly in the database: enterprises, inspectors, completed inspections."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

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
    check_request_id: int | None = 1,
) -> int:
    """A completed inspection with inspectors present as given; returns its id."""
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
