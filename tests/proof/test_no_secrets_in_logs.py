"""No secret reaches the logs: a run of `serve` (INFO, JSON lines) is grepped for every bearer
token, survey link token, webhook signing secret and configured secret it used or held."""

from __future__ import annotations

import secrets
from typing import Any

import httpx

from tests.conftest import TEST_PEPPER
from tests.proof.server import SESSION_SECRET, ServedApp

ROLES = (("admin", None), ("supervisor", None), ("scheduler", "SCJG"), ("approver", "SCJG"))


async def test_a_full_run_logs_no_secret(
    served: ServedApp, two_agencies: tuple[str, str], make_headers: Any
) -> None:
    used: list[str] = [TEST_PEPPER, SESSION_SECRET]
    async with httpx.AsyncClient(base_url=served.base, timeout=30) as client:
        for role, agency in ROLES:
            headers = await make_headers(role, agency)
            used.append(headers["Authorization"].removeprefix("Bearer "))
            for path in ("/v1/me", "/v1/agencies", "/v1/inspections", "/v1/plans"):
                assert (await client.get(path, headers=headers)).status_code < 500
            # a forbidden write is logged as a refusal, still without the token
            r = await client.post(
                "/v1/agencies", json={"code": "XJGL", "name": "x"}, headers=headers
            )
            assert r.status_code in (201, 403, 409)
        # unknown bearer tokens are refused and not echoed into the log either
        bogus = "ih_" + secrets.token_urlsafe(32)
        used.append(bogus)
        r = await client.get("/v1/me", headers={"Authorization": f"Bearer {bogus}"})
        assert r.status_code == 401
        # survey link tokens travel in the path of public routes and pages
        link = secrets.token_urlsafe(32)
        used.append(link)
        for path in (f"/public/v1/surveys/{link}", f"/s/{link}"):
            assert (await client.get(path)).status_code in (404, 410)
        # a webhook subscription's signing secret is shown once, and never logged
        admin = await make_headers("admin")
        r = await client.post(
            "/v1/webhook-subscriptions",
            json={"url": "https://127.0.0.1:9/hook", "event_types": ["inspection.scheduled"]},
            headers=admin,
        )
        assert r.status_code == 201, r.text
        used.append(r.json()["secret"])
    log = served.log()
    assert '"msg": "request"' in log  # the request log is on, and is what we grep
    leaked = [s[:8] + "…" for s in used if s in log]
    assert leaked == []
