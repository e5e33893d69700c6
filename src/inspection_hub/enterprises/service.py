"""Enterprise import (all-or-nothing, COPY-based), listing and updates with risk history."""

from __future__ import annotations

import hashlib
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from inspection_hub.audit.service import record
from inspection_hub.auth.principal import Principal
from inspection_hub.db.session import driver_connection
from inspection_hub.enterprises.models import Enterprise, EnterpriseRiskClass
from inspection_hub.enterprises.schemas import EnterpriseRead, EnterpriseUpdate, check_uscc
from inspection_hub.errors import NotFound, PreconditionFailed, ValidationFailed
from inspection_hub.events import types as ev
from inspection_hub.events.outbox import emit
from inspection_hub.kit.pagination import MAX_LIMIT, decode_cursor, encode_cursor
from inspection_hub.kit.timeutil import local_today

EARLIEST = date(1900, 1, 1)
_COLUMNS = (
    "uscc",
    "name",
    "district_code",
    "industry_code",
    "risk_class",
    "established_on",
    "address",
    "callback_url",
)


async def import_rows(
    session: AsyncSession, actor: Principal | None, rows: list[dict[str, Any]], digest: str
) -> tuple[int, int]:
    """Upsert validated rows in the caller's transaction; returns (created, updated)."""
    raw: Any = await driver_connection(session)
    await raw.execute(
        "CREATE TEMP TABLE enterprise_import (LIKE enterprise INCLUDING DEFAULTS) ON COMMIT DROP"
    )
    await raw.copy_records_to_table(
        "enterprise_import",
        records=[tuple(r[c] for c in _COLUMNS) for r in rows],
        columns=list(_COLUMNS),
    )
    today = local_today()
    # Risk history first, while the old class is still visible.
    await raw.execute(
        """
        INSERT INTO enterprise_risk_class (enterprise_uscc, valid_from, risk_class)
        SELECT i.uscc, $1::date, i.risk_class
        FROM enterprise_import i JOIN enterprise e ON e.uscc = i.uscc
        WHERE e.risk_class <> i.risk_class
        ON CONFLICT (enterprise_uscc, valid_from) DO UPDATE SET risk_class = EXCLUDED.risk_class
        """,
        today,
    )
    await raw.execute(
        """
        INSERT INTO enterprise_risk_class (enterprise_uscc, valid_from, risk_class)
        SELECT i.uscc, COALESCE(i.established_on, $1::date), i.risk_class
        FROM enterprise_import i
        WHERE NOT EXISTS (SELECT 1 FROM enterprise e WHERE e.uscc = i.uscc)
        """,
        EARLIEST,
    )
    created = await raw.fetchval(
        """
        WITH up AS (
            INSERT INTO enterprise (uscc, name, district_code, industry_code, risk_class,
                                    established_on, address, callback_url)
            SELECT uscc, name, district_code, industry_code, risk_class, established_on,
                   address, callback_url
            FROM enterprise_import
            ON CONFLICT (uscc) DO UPDATE SET
                name = EXCLUDED.name, district_code = EXCLUDED.district_code,
                industry_code = EXCLUDED.industry_code, risk_class = EXCLUDED.risk_class,
                established_on = EXCLUDED.established_on, address = EXCLUDED.address,
                callback_url = EXCLUDED.callback_url,
                version = enterprise.version + 1, updated_at = now()
            RETURNING (xmax = 0) AS inserted
        )
        SELECT count(*) FILTER (WHERE inserted) FROM up
        """
    )
    created = int(created)
    updated = len(rows) - created
    summary = {"created": created, "updated": updated, "rows": len(rows), "sha256": digest}
    await record(
        session, actor, "enterprise.import", "enterprise_import", digest[:16], after=summary
    )
    await emit(session, ev.ENTERPRISES_IMPORTED, digest[:16], summary)
    return created, updated


def upload_digest(body: bytes) -> str:
    """SHA-256 of the uploaded bytes (recorded in the audit trail)."""
    return hashlib.sha256(body).hexdigest()


def normalise_uscc(value: str) -> str:
    """A valid, upper-case USCC, or 404 (an invalid code cannot name an enterprise)."""
    code, reason = check_uscc(value)
    if code is None:
        raise NotFound(f"{value} is not a valid USCC ({reason}).")
    return code


async def get_enterprise(session: AsyncSession, uscc: str) -> Enterprise:
    """The enterprise, or 404."""
    code = normalise_uscc(uscc)
    enterprise = await session.get(Enterprise, code)
    if enterprise is None:
        raise NotFound(f"Enterprise {code} is not registered.")
    return enterprise


async def list_enterprises(
    session: AsyncSession,
    *,
    district: str | None,
    industry_prefix: str | None,
    risk_class: str | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[Enterprise], str | None]:
    """Filtered, ordered by uscc, cursor-paginated."""
    limit = max(1, min(limit, MAX_LIMIT))
    stmt = select(Enterprise).order_by(Enterprise.uscc).limit(limit + 1)
    if district:
        stmt = stmt.where(Enterprise.district_code == district)
    if industry_prefix:
        stmt = stmt.where(Enterprise.industry_code.startswith(industry_prefix.upper()))
    if risk_class:
        stmt = stmt.where(Enterprise.risk_class == risk_class)
    after = decode_cursor(cursor)
    if after:
        stmt = stmt.where(Enterprise.uscc > str(after[0]))
    items = list((await session.execute(stmt)).scalars())
    next_cursor = encode_cursor([items[limit - 1].uscc]) if len(items) > limit else None
    return items[:limit], next_cursor


async def update_enterprise(
    session: AsyncSession,
    actor: Principal,
    uscc: str,
    data: EnterpriseUpdate,
    if_match: int | None,
) -> Enterprise:
    """Apply a partial update; a risk-class change is recorded with its date."""
    enterprise = await get_enterprise(session, uscc)
    await session.refresh(enterprise, with_for_update=True)
    if if_match is not None and if_match != enterprise.version:
        raise PreconditionFailed(
            f"Enterprise {enterprise.uscc} is at version {enterprise.version}, not {if_match}."
        )
    changes = data.model_dump(exclude_unset=True)
    valid_from = changes.pop("risk_class_valid_from", None)
    if not changes:
        raise ValidationFailed("Nothing to change.", errors=[{"field": "body", "detail": "empty"}])
    before = EnterpriseRead.model_validate(enterprise).model_dump(mode="json")
    new_class = changes.get("risk_class")
    if new_class and new_class != enterprise.risk_class:
        start = valid_from or local_today()
        await session.merge(
            EnterpriseRiskClass(
                enterprise_uscc=enterprise.uscc, valid_from=start, risk_class=new_class
            )
        )
    for key, value in changes.items():
        setattr(enterprise, key, value)
    enterprise.version += 1
    await session.flush()
    after = EnterpriseRead.model_validate(enterprise).model_dump(mode="json")
    await record(
        session,
        actor,
        "enterprise.update",
        "enterprise",
        enterprise.uscc,
        before=before,
        after=after,
    )
    await emit(
        session,
        ev.ENTERPRISE_UPDATED,
        enterprise.uscc,
        {"uscc": enterprise.uscc, "changes": sorted(changes)},
        enterprise_uscc=enterprise.uscc,
    )
    return enterprise


async def risk_history(session: AsyncSession, uscc: str) -> list[EnterpriseRiskClass]:
    """The enterprise's risk classes over time, oldest first."""
    stmt = (
        select(EnterpriseRiskClass)
        .where(EnterpriseRiskClass.enterprise_uscc == uscc)
        .order_by(EnterpriseRiskClass.valid_from)
    )
    return list((await session.execute(stmt)).scalars())
