"""The audit trail: one row per write, hash chain verified, tampering named, rows immutable."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from inspection_hub.audit.service import verify_chain
from tests.foundation.test_enterprise_import import post_csv, rows, to_csv


async def do_writes(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    """Agencies + matters (fixture), an inspector, an import and an update."""
    r = await client.post(
        "/v1/agencies/SCJG/inspectors",
        json={"name": "王伟", "certificate_no": "JS-9", "certificate_valid_until": "2030-01-01"},
        headers=admin,
    )
    assert r.status_code == 201
    data = rows(5)
    assert (await post_csv(client, admin, to_csv(data))).status_code == 200
    r = await client.patch(
        f"/v1/enterprises/{data[0]['uscc']}", json={"name": "新名称"}, headers=admin
    )
    assert r.status_code == 200


async def actions(sessionmaker: Any) -> dict[str, int]:
    async with sessionmaker() as s:
        result = await s.execute(text("SELECT action, count(*) FROM audit_log GROUP BY action"))
        return {a: int(n) for a, n in result}


async def verify(sessionmaker: Any) -> Any:
    async with sessionmaker() as s:
        return await verify_chain(s)


async def superuser_sql(sessionmaker: Any, *statements: str) -> None:
    """Seal what is pending, then tamper as the database owner: trigger off, change, trigger on."""
    async with sessionmaker() as s, s.begin():
        await s.execute(text("SELECT audit_seal()"))
    async with sessionmaker() as s, s.begin():
        await s.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update"))
        for sql in statements:
            await s.execute(text(sql))
        await s.execute(text("ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update"))


async def test_every_write_is_audited_with_actor_and_request_id(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    two_agencies: tuple[str, str],
    sessionmaker: Any,
) -> None:
    await do_writes(client, admin)
    assert await actions(sessionmaker) == {
        "agency.create": 2,
        "matter.create": 2,
        "inspector.create": 1,
        "enterprise.import": 1,
        "enterprise.update": 1,
    }
    async with sessionmaker() as s:
        row = (
            await s.execute(
                text(
                    "SELECT actor_name, role, before, after, request_id FROM audit_log "
                    "WHERE action = 'enterprise.update'"
                )
            )
        ).one()
    assert row.role == "admin"
    assert row.actor_name.startswith("admin-")
    assert row.after["name"] == "新名称"
    assert row.before["name"] != "新名称"
    assert row.request_id
    # failed writes leave no audit row
    r = await client.post("/v1/agencies", json={"code": "SCJG", "name": "x"}, headers=admin)
    assert r.status_code == 409
    assert (await actions(sessionmaker))["agency.create"] == 2
    report = await verify(sessionmaker)
    assert report.ok
    assert report.rows == 7


async def test_edited_row_is_named(
    client: httpx.AsyncClient, admin: dict[str, str], two_agencies: Any, sessionmaker: Any
) -> None:
    await do_writes(client, admin)
    assert (await verify(sessionmaker)).ok
    await superuser_sql(
        sessionmaker, """UPDATE audit_log SET after = '{"code": "EVIL"}' WHERE id = 3"""
    )
    report = await verify(sessionmaker)
    assert not report.ok
    assert report.first_broken_id == 3
    assert report.reason is not None
    assert "edited" in report.reason


async def test_deleted_row_names_the_next(
    client: httpx.AsyncClient, admin: dict[str, str], two_agencies: Any, sessionmaker: Any
) -> None:
    await do_writes(client, admin)
    await superuser_sql(sessionmaker, "DELETE FROM audit_log WHERE id = 4")
    report = await verify(sessionmaker)
    assert (report.ok, report.first_broken_id) == (False, 5)
    # deleting the first row is detected too
    await superuser_sql(sessionmaker, "DELETE FROM audit_log WHERE id = 1")
    report = await verify(sessionmaker)
    assert (report.ok, report.first_broken_id) == (False, 2)


async def test_reordered_rows_detected(
    client: httpx.AsyncClient, admin: dict[str, str], two_agencies: Any, sessionmaker: Any
) -> None:
    await do_writes(client, admin)
    await superuser_sql(
        sessionmaker,
        "UPDATE audit_log SET id = -1 WHERE id = 2",
        "UPDATE audit_log SET id = 2 WHERE id = 3",
        "UPDATE audit_log SET id = 3 WHERE id = -1",
    )
    report = await verify(sessionmaker)
    assert not report.ok
    assert report.first_broken_id == 2


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_log SET actor_name = 'someone else'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ],
    ids=["update", "delete", "truncate"],
)
async def test_application_cannot_change_audit_rows(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    two_agencies: Any,
    sessionmaker: Any,
    sql: str,
) -> None:
    with pytest.raises(DBAPIError, match="append-only"):
        async with sessionmaker() as s, s.begin():
            await s.execute(text(sql))
    assert sum((await actions(sessionmaker)).values()) == 4
    assert (await verify(sessionmaker)).ok


async def test_chain_fields_cannot_be_forged_on_insert(
    client: httpx.AsyncClient, admin: dict[str, str], two_agencies: Any, sessionmaker: Any
) -> None:
    """The triggers set id, time, prev_hash and hash: values sent by the writer are ignored."""
    async with sessionmaker() as s, s.begin():
        await s.execute(
            text(
                "INSERT INTO audit_log (id, actor_name, role, action, object_type, object_id, "
                "prev_hash, hash) VALUES (999, 'x', 'admin', 'forged', 'x', 'x', 'p', 'h')"
            )
        )
    async with sessionmaker() as s:
        pending = (
            await s.execute(text("SELECT id, prev_hash FROM audit_log WHERE action = 'forged'"))
        ).one()
    assert pending.id < 0  # pending until sealed, whatever id the writer sent
    assert pending.prev_hash is None
    assert (await verify(sessionmaker)).ok  # seals, then checks
    async with sessionmaker() as s:
        row = (
            await s.execute(text("SELECT id, prev_hash FROM audit_log WHERE action = 'forged'"))
        ).one()
    assert row.id == 5
    assert row.prev_hash != "p"


async def test_an_aborted_seal_leaves_no_gap_and_no_false_alarm(
    client: httpx.AsyncClient, admin: dict[str, str], two_agencies: Any, sessionmaker: Any
) -> None:
    # A sealing transaction that dies (connection terminated, process killed) must not leave a
    # hole in the chain's ids that verify would then report as a deleted row.
    await do_writes(client, admin)
    async with sessionmaker() as s, s.begin():
        await s.execute(text("SELECT audit_seal(3)"))  # the first three rows, committed
    async with sessionmaker() as s:
        assert await s.scalar(text("SELECT audit_seal()")) > 0
        await s.rollback()  # the sealer dies before committing
    report = await verify(sessionmaker)
    assert report.ok, report
    async with sessionmaker() as s:
        ids = list((await s.execute(text("SELECT id FROM audit_log ORDER BY id"))).scalars())
    assert ids == list(range(1, len(ids) + 1))
    assert len(ids) > 3
