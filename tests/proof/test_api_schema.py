"""Schemathesis against the OpenAPI schema, for every operation and role, over real HTTP.

The app runs under uvicorn in a subprocess on the test database (production settings apart from
the database). For each role (admin, supervisor, scheduler and approver of SCJG) and every
operation, generated requests must never get a 5xx and every documented response must match its
schema. CI runs a few examples per operation and role; INSPECTION_HUB_LONG_TESTS=1 runs many.
The server's log of the whole run is kept for tests/proof/test_no_secrets_in_logs.py.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.proof.server import ServedApp

LONG = os.environ.get("INSPECTION_HUB_LONG_TESTS") == "1"
MAX_EXAMPLES = 60 if LONG else 3
TIME_BOUND_S = 3600 if LONG else 240
ROLES = (("admin", None), ("supervisor", None), ("scheduler", "SCJG"), ("approver", "SCJG"))


def _runner(operation: Any, base: str, headers: dict[str, str], calls: dict[str, int]) -> Any:
    """A Hypothesis test calling one operation as one role."""

    @given(case=operation.as_strategy())
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=not LONG,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        calls["requests"] += 1
        case.call_and_validate(
            base_url=base,
            headers=headers,
            checks=[not_a_server_error, response_schema_conformance],
            timeout=30,
        )

    return run


def _fuzz(base: str, tokens: dict[str, str]) -> dict[str, Any]:
    """Run every operation for every role; return what was exercised and what failed."""
    schema = schemathesis.openapi.from_url(base + "/openapi.json")
    deadline = time.monotonic() + TIME_BOUND_S
    failures: list[str] = []
    calls = {"operations": 0, "requests": 0}
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result.err()
        operations.append(result.ok())
    # A generated id may name one of the callers' own tokens: revoke last, so a revoked caller
    # cannot silently turn every later operation into a 401.
    operations.sort(key=lambda op: op.label.startswith("POST /v1/tokens/"))
    for operation in operations:
        calls["operations"] += 1
        for role, token in tokens.items():
            run = _runner(operation, base, {"Authorization": f"Bearer {token}"}, calls)
            try:
                run()
            except (Exception, BaseExceptionGroup) as exc:  # collect every failure, fail once
                failures.append(f"{role} {operation.label}: {str(exc)[:800]}")
        assert time.monotonic() < deadline, f"schema run exceeded {TIME_BOUND_S} s"
    return {"failures": failures, **calls}


async def test_no_server_errors_and_responses_match_the_schema(
    served: ServedApp, two_agencies: tuple[str, str], make_headers: Any
) -> None:
    tokens = {}
    for role, agency in ROLES:
        headers = await make_headers(role, agency)
        tokens[role] = headers["Authorization"].removeprefix("Bearer ")
    served.secrets.extend(tokens.values())
    async with httpx.AsyncClient(base_url=served.base) as client:
        assert (await client.get("/readyz")).status_code == 200
    outcome = await asyncio.to_thread(_fuzz, served.base, tokens)
    assert outcome["failures"] == [], "\n\n".join(outcome["failures"])
    assert outcome["operations"] >= 30
    assert outcome["requests"] >= outcome["operations"] * len(ROLES)
