"""Creating inspections (shared by draws, approvals and joint inspections) and their codes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from inspection_hub.agencies.models import Inspector, Matter
from inspection_hub.audit.service import record
from inspection_hub.auth.principal import Principal
from inspection_hub.errors import NotFound, ValidationFailed
from inspection_hub.events import types as ev
from inspection_hub.events.outbox import emit
from inspection_hub.inspections.codes import CodeKeyring
from inspection_hub.inspections.models import Inspection, InspectionInspector, InspectionMatter
from inspection_hub.inspections.state import InspectionStatus


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
    for inspector_id in inspector_ids:
        session.add(
            InspectionInspector(
                enterprise_uscc=enterprise_uscc,
                inspection_id=inspection.id,
                inspector_id=inspector_id,
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
