"""The hot routes answer with `read_json`, which must write exactly what the response model
(`read_of(...).model_dump_json()`) writes, for every shape a check request's row can take."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import asyncpg
import httpx

from inspection_hub.approvals.schemas import CheckRequestRead, read_json, read_of
from tests.approvals.conftest import World, request_body


def _same(row: Any, precheck: dict[str, Any] | None = None) -> bytes:
    expected = read_of(row, precheck).model_dump_json().encode()
    assert read_json(row, precheck) == expected
    return expected


async def test_every_stored_shape_answers_as_the_model_does(
    client: httpx.AsyncClient, world: World, database_url: str
) -> None:
    filed = []
    variants: list[dict[str, Any]] = [
        {},
        {"basis_ref": None},
        {"emergency": True, "basis": "incident"},
        {},
        {},
    ]
    for i, overrides in enumerate(variants):
        r = await client.post(
            "/v1/check-requests",
            json=request_body(world.usccs[i % len(world.usccs)], **overrides),
            headers=world.scheduler,
        )
        assert r.status_code == 201, r.text
        filed.append(r.json())
    pending, no_ref, emergency, approved, rejected = (b["id"] for b in filed)
    # the submission's own answer carried its pre-check through read_json
    assert filed[0]["precheck"] is not None
    r = await client.post(
        f"/v1/check-requests/{approved}/approve", headers=world.approver | {"If-Match": '"1"'}
    )
    assert r.status_code == 200, r.text
    r = await client.post(
        f"/v1/check-requests/{rejected}/reject",
        json={"comment": "材料不全，退回补正"},
        headers=world.approver,
    )
    assert r.status_code == 200, r.text

    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(
            "UPDATE check_request SET escalated_at = now() - interval '1 hour' WHERE id = $1",
            pending,
        )
        rows = await conn.fetch("SELECT * FROM check_request ORDER BY id")
    finally:
        await conn.close()
    assert {r["id"] for r in rows} == {pending, no_ref, emergency, approved, rejected}
    shapes = {
        "escalated": any(r["escalated_at"] is not None for r in rows),
        "decided": any(r["decided_by"] is not None for r in rows),
        "inspection": any(r["inspection_id"] is not None for r in rows),
        "no basis_ref": any(r["basis_ref"] is None for r in rows),
        "comment": any(r["decision_comment"] for r in rows),
    }
    assert all(shapes.values()), shapes
    for row in rows:
        _same(row)
        r = await client.get(f"/v1/check-requests/{row['id']}", headers=world.supervisor)
        assert r.status_code == 200, r.text
        # the GET's pre-check, answered again through both encoders
        _same(row, r.json()["precheck"])


def test_awkward_values_answer_as_the_model_does() -> None:
    at = datetime(2026, 12, 1, 7, 30, 15, 123456, tzinfo=UTC)
    row: dict[str, Any] = {
        "id": 2**62,
        "status": "approved",
        "version": 7,
        "agency_code": "SCJG",
        "enterprise_uscc": "91320404MA1XXXXXXX",
        "matters": ("SCJG-001", "SCJG-002"),
        "basis": "other",
        "basis_ref": '引号"与反斜杠\\、换行\n和 emoji 🚒',
        "reason": "",
        "window_start": date(2026, 12, 31),
        "window_end": date(2027, 1, 1),
        "emergency": False,
        "requester_id": 1,
        "requester_name": "张三",
        "submitted_at": at,
        "decision_due_at": at.astimezone(timezone(timedelta(hours=8))),
        "escalated_at": None,
        "expires_at": at + timedelta(days=10),
        "decided_by": 2,
        "decided_by_name": None,
        "decided_at": datetime(2026, 12, 1, 8, 0, tzinfo=UTC),
        "decision_comment": "同意",
        "inspection_id": 9,
        "policy_version": "2026.1",
    }
    precheck = {
        "findings": [{"kind": "repeat", "with": [1, 2], "score": 0.5, "note": None}],
        "cap": {"limit": 2, "used": 3, "since": date(2026, 1, 1)},
        "ok": False,
    }
    expected = _same(row, precheck)
    _same(row)
    assert CheckRequestRead.model_validate_json(expected).decided_by is not None
