"""Fixtures for check requests: enterprises, officials of two agencies, a request factory."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest

from inspection_hub.kit.synth import enterprises
from inspection_hub.kit.timeutil import local_today


@dataclass
class World:
    """Two agencies with officials, and a few registered enterprises."""

    usccs: list[str]
    scheduler: dict[str, str]
    approver: dict[str, str]
    other_scheduler: dict[str, str]
    other_approver: dict[str, str]
    supervisor: dict[str, str]


async def import_enterprises(
    client: httpx.AsyncClient, admin: dict[str, str], n: int, seed: int = 7
) -> list[str]:
    """Register n synthetic enterprises; return their USCCs."""
    rows = []
    for e in enterprises(n, seed=seed):
        e["established_on"] = "2010-01-01"
        rows.append(e)
    r = await client.post("/v1/enterprises/import", json={"enterprises": rows}, headers=admin)
    assert r.status_code == 200, r.text
    return [e["uscc"] for e in rows]


@pytest.fixture
async def world(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    two_agencies: tuple[str, str],
    make_headers: Callable[..., Awaitable[dict[str, str]]],
) -> World:
    """SCJG and YJGL officials, a supervisor and three enterprises."""
    usccs = await import_enterprises(client, admin, 3)
    return World(
        usccs=usccs,
        scheduler=await make_headers("scheduler", "SCJG"),
        approver=await make_headers("approver", "SCJG"),
        other_scheduler=await make_headers("scheduler", "YJGL"),
        other_approver=await make_headers("approver", "YJGL"),
        supervisor=await make_headers("supervisor"),
    )


def request_body(uscc: str, **overrides: Any) -> dict[str, Any]:
    """A valid check request body for SCJG, one week ahead."""
    start = local_today() + timedelta(days=7)
    body: dict[str, Any] = {
        "agency": "SCJG",
        "enterprise": uscc,
        "matters": ["SCJG-001"],
        "basis": "complaint",
        "basis_ref": "投诉编号 2026-118",
        "reason": "群众投诉食品过期",
        "window": {"start": start.isoformat(), "end": (start + timedelta(days=7)).isoformat()},
        "emergency": False,
    }
    body.update(overrides)
    return body
