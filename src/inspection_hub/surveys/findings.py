"""The one place verification findings are written (survey discrepancies, trace checks).

Interim store: `verification_finding`, the same shape as the conflicts table (unique per
enterprise and finding key). When the conflicts branch lands, only this module changes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from inspection_hub.events import types as ev
from inspection_hub.events.outbox import emit

FINDINGS_TABLE = "verification_finding"


async def record_finding(
    session: AsyncSession,
    kind: str,
    enterprise_uscc: str,
    inspection_ids: Sequence[int],
    detail: dict[str, Any],
    *,
    finding_key: str,
    agency_codes: Sequence[str] = (),
) -> int | None:
    """Open a finding once per (enterprise, finding_key); returns its id, None if it existed."""
    new_id = (
        await session.execute(
            text(
                f"""
            INSERT INTO {FINDINGS_TABLE} (enterprise_uscc, kind, finding_key, inspection_ids,
                                          agency_codes, detail)
            VALUES (:u, :k, :key, CAST(:ids AS bigint[]), CAST(:ag AS varchar[]),
                    CAST(:d AS jsonb))
            ON CONFLICT (enterprise_uscc, finding_key) DO NOTHING
            RETURNING id
            """
            ),
            {
                "u": enterprise_uscc,
                "k": kind,
                "key": finding_key,
                "ids": list(inspection_ids),
                "ag": list(agency_codes),
                "d": json.dumps(detail, ensure_ascii=False, default=str),
            },
        )
    ).scalar_one_or_none()
    if new_id is None:
        return None
    await emit(
        session,
        ev.CONFLICT_DETECTED,
        new_id,
        {"conflict_id": new_id, "kind": kind, "inspection_ids": list(inspection_ids), **detail},
        enterprise_uscc=enterprise_uscc,
        agency_codes=list(agency_codes),
    )
    return int(new_id)


async def record_findings_from(
    session: AsyncSession, kind: str, rule: str, select_sql: str, params: dict[str, Any]
) -> int:
    """Open, set-based, one finding per row of `select_sql` (enterprise_uscc, inspection_id,
    agency_code, detail); the key is kind + inspection + rule, so re-runs add nothing."""
    rows = (
        await session.execute(
            text(
                f"""
            INSERT INTO {FINDINGS_TABLE} (enterprise_uscc, kind, finding_key, inspection_ids,
                                          agency_codes, detail)
            SELECT q.enterprise_uscc, CAST(:kind AS varchar),
                   CAST(:kind AS varchar) || ':' || q.inspection_id || ':'
                       || CAST(:rule AS varchar),
                   ARRAY[q.inspection_id], ARRAY[q.agency_code]::varchar[],
                   q.detail || jsonb_build_object('rule', CAST(:rule AS varchar))
            FROM ({select_sql}) AS q(enterprise_uscc, inspection_id, agency_code, detail)
            ON CONFLICT (enterprise_uscc, finding_key) DO NOTHING
            RETURNING id, enterprise_uscc, inspection_ids, agency_codes, detail
            """
            ),
            {**params, "kind": kind, "rule": rule},
        )
    ).all()
    for r in rows:
        await emit(
            session,
            ev.CONFLICT_DETECTED,
            r.id,
            {
                "conflict_id": r.id,
                "kind": kind,
                "inspection_ids": list(r.inspection_ids),
                **r.detail,
            },
            enterprise_uscc=r.enterprise_uscc,
            agency_codes=list(r.agency_codes),
        )
    return len(rows)
