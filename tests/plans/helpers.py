"""Arranging plans through the API: enterprises, inspectors, plans, submissions, draws."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any

import httpx

from inspection_hub.kit.synth import enterprises
from inspection_hub.kit.timeutil import local_today

MakeHeaders = Callable[..., Awaitable[dict[str, str]]]


def this_year() -> int:
    """The current plan year (Asia/Shanghai)."""
    return local_today().year


def whole_year() -> dict[str, str]:
    """A window covering the current year."""
    y = this_year()
    return {"start": date(y, 1, 1).isoformat(), "end": date(y, 12, 31).isoformat()}


async def import_enterprises(
    client: httpx.AsyncClient, admin: dict[str, str], n: int = 300, seed: int = 7, **override: Any
) -> list[dict[str, Any]]:
    """Import n synthetic enterprises; return the rows as sent."""
    rows = []
    for row in enterprises(n, seed):
        row = {**row, **override}
        if isinstance(row.get("established_on"), date):
            row["established_on"] = row["established_on"].isoformat()
        rows.append(row)
    r = await client.post("/v1/enterprises/import", json={"enterprises": rows}, headers=admin)
    assert r.status_code == 200, r.text
    return rows


async def add_inspectors(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    agency: str,
    n: int,
    valid_until: date | None = None,
    prefix: str = "",
) -> list[int]:
    """Register n inspectors of an agency; return their ids."""
    until = valid_until or date(this_year() + 3, 12, 31)
    ids = []
    for i in range(n):
        r = await client.post(
            f"/v1/agencies/{agency}/inspectors",
            json={
                "name": f"{agency}检查员{prefix}{i}",
                "certificate_no": f"{agency}-{prefix}{i:05d}",
                "certificate_valid_until": until.isoformat(),
            },
            headers=admin,
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    return ids


def item(matters: list[str], **extra: Any) -> dict[str, Any]:
    """A plan item over the whole year."""
    return {"matters": matters, "window": whole_year(), **extra}


async def create_plan(
    client: httpx.AsyncClient, headers: dict[str, str], items: list[dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    """File a draft plan; assert 201."""
    body = {"year": this_year(), "title": "2026年度双随机抽查计划", "items": items, **extra}
    r = await client.post("/v1/plans", json=body, headers=headers)
    assert r.status_code == 201, r.text
    plan: dict[str, Any] = r.json()
    return plan


async def submit_and_draw(
    client: httpx.AsyncClient, headers: dict[str, str], plan_id: int
) -> dict[str, Any]:
    """Submit and draw a plan; assert success."""
    r = await client.post(f"/v1/plans/{plan_id}/submit", headers=headers)
    assert r.status_code == 200, r.text
    r = await client.post(f"/v1/plans/{plan_id}/draw", headers=headers)
    assert r.status_code == 200, r.text
    plan: dict[str, Any] = r.json()
    return plan
