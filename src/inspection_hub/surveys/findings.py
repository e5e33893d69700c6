"""Verification findings (survey discrepancies, unregistered visits, trace checks).

They live in the one conflict store (`conflict`), written through
`conflicts.service.record_external_finding`, which is idempotent on (kind, inspections, suffix)
and emits `conflict.detected`. Survey discrepancies carry no agency codes, so agency roles
never list or open them (the conflict scoping matches on `agency_codes`): supervisors only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from inspection_hub.conflicts.service import record_external_finding

VERIFICATION_KINDS = ("survey_discrepancy", "unregistered_visit", "trace_check_failed")


async def record_finding(
    session: AsyncSession,
    kind: str,
    enterprise_uscc: str,
    inspection_ids: Sequence[int],
    detail: dict[str, Any],
    *,
    key_suffix: str = "",
    agency_codes: Sequence[str] = (),
) -> int | None:
    """Open a finding once per (kind, inspections, key_suffix); its id, None if it existed."""
    return await record_external_finding(
        session,
        kind=kind,
        uscc=enterprise_uscc,
        inspection_ids=list(inspection_ids),
        agency_codes=list(agency_codes),
        detail=detail,
        key_suffix=key_suffix,
    )


async def record_findings_from(
    session: AsyncSession, kind: str, rule: str, select_sql: str, params: dict[str, Any]
) -> int:
    """One finding per row of `select_sql` (enterprise_uscc, inspection_id, agency_code, detail)
    not yet recorded; keyed `kind:inspection:rule`, so re-runs add nothing. Returns new ones.

    The rows already recorded are filtered out in SQL (by the unique finding key), so a nightly
    re-run only calls the store for the new failures.
    """
    rows = (
        await session.execute(
            text(
                f"""
            SELECT q.enterprise_uscc, q.inspection_id, q.agency_code, q.detail
            FROM ({select_sql}) AS q(enterprise_uscc, inspection_id, agency_code, detail)
            WHERE NOT EXISTS (
                SELECT 1 FROM conflict c
                WHERE c.enterprise_uscc = q.enterprise_uscc
                  AND c.finding_key = CAST(:kind AS varchar) || ':' || q.inspection_id || ':'
                                      || CAST(:rule AS varchar))
            ORDER BY q.enterprise_uscc, q.inspection_id
            """
            ),
            {**params, "kind": kind, "rule": rule},
        )
    ).all()
    created = 0
    for r in rows:
        new_id = await record_finding(
            session,
            kind,
            r.enterprise_uscc,
            [int(r.inspection_id)],
            {**r.detail, "rule": rule},
            key_suffix=rule,
            agency_codes=[r.agency_code],
        )
        created += new_id is not None
    return created
