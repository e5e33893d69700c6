"""Conflict findings in SQLAlchemy Core: idempotent writes and the open mergeable groups.

The facts the rules read are loaded by conflicts/facts.py (one round trip per enterprise).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from inspection_hub.conflicts.rules import Finding

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
