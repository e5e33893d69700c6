"""Hypothesis stateful test of the check request state machine, through HTTP on real PostgreSQL.

Hypothesis drives a synchronous RuleBasedStateMachine; every rule runs its HTTP calls on an
event loop owned by this test (asyncio.Runner) against its own instance of the app, so nothing
depends on pytest-asyncio's loop. Invariants: the database agrees with the model, final states
never change, and every final state has exactly one audit row and one event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any, ClassVar, TypeVar

import httpx
from hypothesis import HealthCheck
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import text

from inspection_hub.approvals.service import run_deadlines
from inspection_hub.config import Settings
from inspection_hub.kit.timeutil import utcnow
from inspection_hub.main import create_app
from tests.approvals.conftest import World, request_body

R = TypeVar("R")
FINAL_ACTIONS = {
    "approved": ("check_request.approve", "check_request.approved"),
    "rejected": ("check_request.reject", "check_request.rejected"),
    "withdrawn": ("check_request.withdraw", "check_request.withdrawn"),
    "expired": ("check_request.expire", "check_request.expired"),
}


class Harness:
    """An app instance with its lifespan, on a loop this test controls."""

    def __init__(self, app_settings: Settings, database_url: str) -> None:
        self.runner = asyncio.Runner()
        self.app = create_app(app_settings, database_url)
        self._lifespan = self.app.router.lifespan_context(self.app)
        self.run(self._lifespan.__aenter__())
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://testserver"
        )

    def run(self, coro: Coroutine[Any, Any, R]) -> R:
        return self.runner.run(coro)

    def close(self) -> None:
        self.run(self.client.aclose())
        self.run(self._lifespan.__aexit__(None, None, None))
        self.runner.close()


class CheckRequestMachine(RuleBasedStateMachine):
    """Random sequences of submissions, decisions, withdrawals and deadline sweeps."""

    harness: ClassVar[Harness]
    world: ClassVar[World]
    requests = Bundle("requests")

    def __init__(self) -> None:
        super().__init__()
        self.model: dict[int, str] = {}
        self.history: dict[int, list[str]] = {}

    def _post(self, path: str, headers: dict[str, str], json: Any = None) -> httpx.Response:
        return self.harness.run(self.harness.client.post(path, json=json, headers=headers))

    @initialize()
    def start(self) -> None:
        self.model.clear()

    @rule(target=requests, emergency=st.booleans(), uscc_index=st.integers(0, 2))
    def submit(self, emergency: bool, uscc_index: int) -> int:
        body = request_body(
            self.world.usccs[uscc_index], basis="incident" if emergency else "referral"
        )
        body["emergency"] = emergency
        r = self._post("/v1/check-requests", self.world.scheduler, body)
        assert r.status_code == 201, r.text
        rid = int(r.json()["id"])
        assert r.json()["status"] == "pending"
        self.model[rid] = "pending"
        self.history[rid] = ["pending"]
        return rid

    def _expect(self, rid: int, r: httpx.Response, new_status: str) -> None:
        if self.model[rid] == "pending":
            assert r.status_code == 200, r.text
            assert r.json()["status"] == new_status
            self.model[rid] = new_status
            self.history[rid].append(new_status)
        else:
            assert r.status_code == 409, r.text
            assert r.json()["current_status"] == self.model[rid]

    @rule(rid=requests)
    def approve(self, rid: int) -> None:
        r = self._post(f"/v1/check-requests/{rid}/approve", self.world.approver, {})
        self._expect(rid, r, "approved")

    @rule(rid=requests, comment=st.sampled_from(["", "依据不足，不予批准"]))
    def reject(self, rid: int, comment: str) -> None:
        r = self._post(
            f"/v1/check-requests/{rid}/reject", self.world.approver, {"comment": comment}
        )
        if not comment:
            assert r.status_code == 422
            return
        self._expect(rid, r, "rejected")

    @rule(rid=requests)
    def withdraw(self, rid: int) -> None:
        r = self._post(f"/v1/check-requests/{rid}/withdraw", self.world.scheduler)
        self._expect(rid, r, "withdrawn")

    @rule(rid=requests, who=st.sampled_from(["other_approver", "scheduler", "supervisor"]))
    def unauthorized_decision(self, rid: int, who: str) -> None:
        r = self._post(f"/v1/check-requests/{rid}/approve", getattr(self.world, who), {})
        assert r.status_code == 403

    @rule()
    def deadlines_pass(self) -> None:
        async def sweep() -> list[int]:
            async with self.harness.app.state.sessionmaker() as s, s.begin():
                report = await run_deadlines(s, utcnow() + timedelta(days=60))
            return report.expired

        expired = set(self.harness.run(sweep()))
        for rid, status in self.model.items():
            if status == "pending":
                assert rid in expired
                self.model[rid] = "expired"
                self.history[rid].append("expired")
            else:
                assert rid not in expired

    @invariant()
    def database_agrees_and_final_states_are_recorded_once(self) -> None:
        if not self.model:
            return
        ids = sorted(self.model)

        async def load() -> tuple[
            dict[int, str], dict[tuple[str, str], int], dict[tuple[str, str], int]
        ]:
            async with self.harness.app.state.sessionmaker() as s:
                statuses = dict(
                    (int(i), st_)
                    for i, st_ in await s.execute(
                        text("SELECT id, status FROM check_request WHERE id = ANY(:ids)"),
                        {"ids": ids},
                    )
                )
                audits = {
                    (oid, action): int(n)
                    for oid, action, n in await s.execute(
                        text(
                            "SELECT object_id, action, count(*) FROM audit_log "
                            "WHERE object_type = 'check_request' AND object_id = ANY(:ids) "
                            "GROUP BY 1, 2"
                        ),
                        {"ids": [str(i) for i in ids]},
                    )
                }
                events = {
                    (aid, type_): int(n)
                    for aid, type_, n in await s.execute(
                        text(
                            "SELECT aggregate_id, type, count(*) FROM event "
                            "WHERE aggregate_type = 'check_request' AND aggregate_id = ANY(:ids) "
                            "GROUP BY 1, 2"
                        ),
                        {"ids": [str(i) for i in ids]},
                    )
                }
            return statuses, audits, events

        statuses, audits, events = self.harness.run(load())
        assert statuses == self.model
        for rid, status in self.model.items():
            # a request reaches at most one final state, once
            assert len(self.history[rid]) <= 2
            final_audits = sum(audits.get((str(rid), a), 0) for a, _ in FINAL_ACTIONS.values())
            final_events = sum(events.get((str(rid), e), 0) for _, e in FINAL_ACTIONS.values())
            if status == "pending":
                assert (final_audits, final_events) == (0, 0)
            else:
                audit_action, event_type = FINAL_ACTIONS[status]
                assert audits.get((str(rid), audit_action)) == 1
                assert events.get((str(rid), event_type)) == 1
                assert (final_audits, final_events) == (1, 1)


def test_check_request_state_machine(world: World, settings: Settings, database_url: str) -> None:
    """Run the machine; the fixtures arranged agencies, officials and enterprises."""
    harness = Harness(settings, database_url)
    CheckRequestMachine.harness = harness
    CheckRequestMachine.world = world
    try:
        run_state_machine_as_test(
            CheckRequestMachine,
            settings=settings_for_machine(),
        )
    finally:
        harness.close()


def settings_for_machine() -> hsettings:
    return hsettings(
        max_examples=15,
        stateful_step_count=8,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
