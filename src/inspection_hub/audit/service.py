"""Recording audit rows (in the caller's transaction) and verifying the hash chain."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from inspection_hub.auth.principal import Principal
from inspection_hub.kit.context import request_id_var

SYSTEM_ACTOR = "system"

INSERT_SQL = """
    INSERT INTO audit_log (actor_id, actor_name, role, action, object_type, object_id,
                           before, after, request_id)
    VALUES (:actor_id, :actor_name, :role, :action, :object_type, :object_id,
            CAST(:before AS jsonb), CAST(:after AS jsonb), :request_id)
"""
_INSERT = text(INSERT_SQL)


def _json(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, default=str)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audit row to append: what `record` writes, for writing together with an event."""

    actor: Principal | None
    action: str
    object_type: str
    object_id: str | int
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None

    def params(self) -> dict[str, Any]:
        """The bind parameters of the audit INSERT (names as in `INSERT_SQL`)."""
        actor = self.actor
        return {
            "actor_id": actor.user_id if actor else None,
            "actor_name": actor.username if actor else SYSTEM_ACTOR,
            "role": actor.role.value if actor else SYSTEM_ACTOR,
            "action": self.action,
            "object_type": self.object_type,
            "object_id": str(self.object_id),
            "before": _json(self.before),
            "after": _json(self.after),
            "request_id": request_id_var.get(),
        }


async def record(
    session: AsyncSession,
    actor: Principal | None,
    action: str,
    object_type: str,
    object_id: str | int,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """Append one audit row; the trigger chains its hash. `actor=None` means the system.

    A write that also emits an event can pass the row to `events.outbox.emit(audit=...)`
    instead: both rows in one statement, one round trip.
    """
    entry = AuditEntry(actor, action, object_type, object_id, before, after)
    await session.execute(_INSERT, entry.params())


@dataclass(frozen=True)
class ChainReport:
    """The result of `audit verify`."""

    rows: int
    ok: bool
    first_broken_id: int | None = None
    reason: str | None = None
    pending: int = 0


async def seal(session: AsyncSession, max_rows: int = 10_000) -> int:
    """Append pending audit rows to the hash chain (in the caller's transaction)."""
    result = await session.execute(text("SELECT audit_seal(:n)"), {"n": max_rows})
    return int(result.scalar_one())


_VERIFY = text(
    """
    SELECT id, prev_hash, hash,
           audit_row_hash(a) AS expected,
           lag(hash) OVER (ORDER BY id) AS previous_hash,
           lag(id) OVER (ORDER BY id) AS previous_id
    FROM audit_log a
    WHERE id > 0
    ORDER BY id
    """
)

GENESIS = "0" * 64


async def verify_chain(session: AsyncSession) -> ChainReport:
    """Seal what is pending, then recompute every row's hash and link; name the first misfit."""
    await seal(session)
    await session.commit()
    pending = int(
        (await session.execute(text("SELECT count(*) FROM audit_log WHERE id < 0"))).scalar_one()
    )
    result = await session.stream(_VERIFY)
    count = 0
    async for row in result:
        count += 1
        expected_prev = GENESIS if row.previous_id is None else row.previous_hash
        if row.id != (row.previous_id or 0) + 1 or row.prev_hash != expected_prev:
            reason = (
                "the row before it was deleted, inserted or reordered"
                if row.previous_id is not None
                else "the first row does not start the chain (earlier rows were deleted)"
            )
            return ChainReport(count, False, int(row.id), reason, pending)
        if row.hash != row.expected:
            return ChainReport(count, False, int(row.id), "the row's content was edited", pending)
    return ChainReport(count, True, pending=pending)
