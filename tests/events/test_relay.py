"""The relay against real PostgreSQL: at-least-once, per-aggregate order, late commits, parking."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inspection_hub.events import types as ev
from inspection_hub.events.outbox import emit
from inspection_hub.events.registry import EventEnvelope, handler
from inspection_hub.events.relay import RetryPolicy, drain, run_once, select_consumers

SEEN: dict[str, list[tuple[str, int, int]]] = defaultdict(list)
FAILING = {"on": False, "calls": 0}
NO_WAIT = RetryPolicy(base_seconds=0.0, max_seconds=0.0)


@handler("test_recorder_a", ev.AGENCY_CREATED, ev.ENTERPRISE_UPDATED)
async def _record_a(session: AsyncSession, event: EventEnvelope) -> None:
    SEEN["a"].append((event.aggregate_id, event.aggregate_seq, event.id))


@handler("test_recorder_b", ev.ENTERPRISE_UPDATED)
async def _record_b(session: AsyncSession, event: EventEnvelope) -> None:
    await session.execute(text("SELECT 1"))  # a handler uses the worker's transaction
    SEEN["b"].append((event.aggregate_id, event.aggregate_seq, event.id))


@handler("test_flaky", ev.SURVEY_SENT, max_attempts=3)
async def _flaky(session: AsyncSession, event: EventEnvelope) -> None:
    FAILING["calls"] += 1
    if FAILING["on"] and event.payload.get("fail"):
        raise RuntimeError("receiver of survey.sent is down")
    SEEN["flaky"].append((event.aggregate_id, event.aggregate_seq, event.id))


def _reset() -> None:
    SEEN.clear()
    FAILING.update(on=False, calls=0)


async def _emit(
    sm: async_sessionmaker[AsyncSession], et: ev.EventType, agg: str, **payload: Any
) -> int:
    async with sm() as session, session.begin():
        return await emit(session, et, agg, payload, agency_codes=["SCJG"])


async def test_rolled_back_event_is_never_handled(sessionmaker: Any) -> None:
    """A transaction that rolls back leaves no event; its neighbours are handled."""
    _reset()
    async with sessionmaker() as session:
        await emit(session, ev.ENTERPRISE_UPDATED, "E1", {"n": 1})
        await session.rollback()
    await _emit(sessionmaker, ev.ENTERPRISE_UPDATED, "E2", n=2)
    await drain(sessionmaker, consumers=["test_recorder_a", "test_recorder_b"])
    assert [s[0] for s in SEEN["a"]] == ["E2"]
    assert [s[0] for s in SEEN["b"]] == ["E2"]
    async with sessionmaker() as session:
        assert (await session.execute(text("SELECT count(*) FROM event"))).scalar_one() == 1


async def test_late_commit_is_not_skipped(sessionmaker: Any) -> None:
    """An event whose transaction commits after a later one's is still handled (both orders)."""
    _reset()
    names = ["test_recorder_a"]
    selected = select_consumers(names)
    # Case 1: the early transaction emits first (lower id) and commits last.
    early = sessionmaker()
    await early.begin()
    await emit(early, ev.ENTERPRISE_UPDATED, "LATE-1", {})
    await _emit(sessionmaker, ev.ENTERPRISE_UPDATED, "PROMPT-1")
    await run_once(sessionmaker, selected)  # the open transaction holds the xmin back
    await early.commit()
    await early.close()
    # Case 2: the late transaction takes its xid first, emits after the prompt one (higher id).
    late = sessionmaker()
    await late.begin()
    await late.execute(text("SELECT pg_current_xact_id()"))
    prompt = sessionmaker()
    await prompt.begin()
    await prompt.execute(text("SELECT pg_current_xact_id()"))
    await emit(prompt, ev.ENTERPRISE_UPDATED, "PROMPT-2", {})
    await emit(late, ev.ENTERPRISE_UPDATED, "LATE-2", {})
    await prompt.commit()
    await prompt.close()
    await run_once(sessionmaker, selected)
    handled_before_late_commit = {s[0] for s in SEEN["a"]}
    await late.commit()
    await late.close()
    await drain(sessionmaker, consumers=names)
    handled = [s[0] for s in SEEN["a"]]
    assert sorted(handled) == ["LATE-1", "LATE-2", "PROMPT-1", "PROMPT-2"]
    assert "LATE-2" not in handled_before_late_commit


async def test_each_consumer_sees_each_event_in_aggregate_order(sessionmaker: Any) -> None:
    """Concurrent writers and two concurrent relays: every event once per consumer, in order."""
    _reset()
    aggregates = [f"ENT-{i}" for i in range(8)]

    async def writer(agg: str) -> None:
        for _ in range(25):
            async with sessionmaker() as session, session.begin():
                await session.execute(
                    text("SELECT pg_advisory_xact_lock(hashtext(:a))"), {"a": agg}
                )
                await emit(session, ev.ENTERPRISE_UPDATED, agg, {})

    selected = select_consumers(["test_recorder_a", "test_recorder_b"])
    stop = asyncio.Event()

    async def relay() -> None:
        while not stop.is_set():
            await run_once(sessionmaker, selected, limit=7)
            await asyncio.sleep(0)

    relays = [asyncio.create_task(relay()) for _ in range(2)]
    await asyncio.gather(*(writer(a) for a in aggregates))
    stop.set()
    await asyncio.gather(*relays)
    await drain(sessionmaker, consumers=["test_recorder_a", "test_recorder_b"])
    for name in ("a", "b"):
        per_agg: dict[str, list[int]] = defaultdict(list)
        for agg, seq, _id in SEEN[name]:
            per_agg[agg].append(seq)
        assert set(per_agg) == set(aggregates)
        for agg, seqs in per_agg.items():
            assert sorted(set(seqs)) == list(range(1, 26)), (name, agg)
            deduped = [s for i, s in enumerate(seqs) if s not in seqs[:i]]
            assert deduped == sorted(deduped), (name, agg, seqs)


async def test_failing_handler_retries_parks_and_is_retried_by_supervisor(
    sessionmaker: Any,
    client: httpx.AsyncClient,
    make_headers: Callable[..., Awaitable[dict[str, str]]],
    two_agencies: tuple[str, str],
) -> None:
    """Retried with backoff, parked after max_attempts with its error; later events wait."""
    _reset()
    FAILING["on"] = True
    await _emit(sessionmaker, ev.SURVEY_SENT, "S1", fail=True)
    await _emit(sessionmaker, ev.SURVEY_SENT, "S1")  # same aggregate: must wait behind it
    await _emit(sessionmaker, ev.SURVEY_SENT, "S2")  # another aggregate: goes on
    for _ in range(4):
        await drain(sessionmaker, consumers=["test_flaky"], retry_policy=NO_WAIT)
    assert [(a, s) for a, s, _ in SEEN["flaky"]] == [("S2", 1)]
    # S1: the unisolated batch try (rolled back) + 3 recorded attempts; S2: once.
    assert FAILING["calls"] == 1 + 3 + 1

    supervisor = await make_headers("supervisor")
    r = await client.get("/v1/events/parked", headers=supervisor)
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert len(items) == 1
    parked = items[0]
    assert parked["consumer"] == "test_flaky"
    assert parked["attempts"] == 3
    assert "receiver of survey.sent is down" in parked["last_error"]
    scheduler = await make_headers("scheduler", "SCJG")
    r = await client.get("/v1/events/parked", headers=scheduler)
    assert r.status_code == 403

    FAILING["on"] = False
    r = await client.post(f"/v1/events/parked/{parked['id']}/retry", headers=supervisor)
    assert r.status_code == 202, r.text
    r = await client.post(f"/v1/events/parked/{parked['id']}/retry", headers=supervisor)
    assert r.status_code == 409
    await drain(sessionmaker, consumers=["test_flaky"], retry_policy=NO_WAIT)
    assert [(a, s) for a, s, _ in SEEN["flaky"]] == [("S2", 1), ("S1", 1), ("S1", 2)]
    async with sessionmaker() as session:
        assert (await session.execute(text("SELECT count(*) FROM handler_run"))).scalar_one() == 0


async def test_backoff_delays_the_retry(sessionmaker: Any) -> None:
    """With a real backoff the failed run is not due yet: drain leaves it pending."""
    _reset()
    FAILING["on"] = True
    await _emit(sessionmaker, ev.SURVEY_SENT, "S9", fail=True)
    await drain(sessionmaker, consumers=["test_flaky"], retry_policy=RetryPolicy(60.0, 600.0))
    async with sessionmaker() as session:
        row = (
            await session.execute(
                text(
                    "SELECT status, attempts, extract(epoch FROM next_attempt_at - now()) AS wait"
                    " FROM handler_run"
                )
            )
        ).one()
    assert row.status == "pending"
    assert row.attempts == 1
    assert 50 < row.wait <= 60
    assert RetryPolicy(2.0, 3600.0).delay(3) == 8.0
    assert RetryPolicy(2.0, 10.0).delay(10) == 10.0


async def _feed(
    client: httpx.AsyncClient, params: dict[str, str], headers: dict[str, str], want: int
) -> dict[str, Any]:
    """GET /v1/events until `want` items show: the snapshot xmin is cluster-wide, so another
    database's open transaction (a parallel test run) may hold new events back briefly."""
    body: dict[str, Any] = {}
    for _ in range(500):
        r = await client.get("/v1/events", params=params, headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        if len(body["items"]) >= want:
            break
        await asyncio.sleep(0.02)
    return body


async def test_event_feed_is_scoped_and_cursor_survives_late_commits(
    sessionmaker: Any,
    client: httpx.AsyncClient,
    make_headers: Callable[..., Awaitable[dict[str, str]]],
    two_agencies: tuple[str, str],
) -> None:
    """Admins see all, an agency sees its own; a late commit appears after the cursor."""
    async with sessionmaker() as session, session.begin():
        await emit(session, ev.CHECK_REQUEST_SUBMITTED, 1, {"n": 1}, agency_codes=["SCJG"])
        await emit(session, ev.CHECK_REQUEST_SUBMITTED, 2, {"n": 2}, agency_codes=["YJGL"])
    admin = await make_headers("admin")
    scjg = await make_headers("scheduler", "SCJG")
    body = await _feed(client, {"types": "check_request.submitted"}, admin, 2)
    assert [e["payload"]["n"] for e in body["items"]] == [1, 2]
    body = await _feed(client, {"types": "check_request.submitted"}, scjg, 1)
    assert [e["payload"]["n"] for e in body["items"]] == [1]
    cursor = body["next_cursor"]

    late = sessionmaker()
    await late.begin()
    await emit(late, ev.CHECK_REQUEST_SUBMITTED, 3, {"n": 3}, agency_codes=["SCJG"])
    async with sessionmaker() as session, session.begin():
        await emit(session, ev.CHECK_REQUEST_SUBMITTED, 4, {"n": 4}, agency_codes=["SCJG"])
    r = await client.get("/v1/events", params={"after": cursor}, headers=scjg)
    assert r.json()["items"] == []  # 4 waits: 3's transaction is still open
    await late.commit()
    await late.close()
    body = await _feed(client, {"after": cursor}, scjg, 2)
    assert [e["payload"]["n"] for e in body["items"]] == [3, 4]
    r = await client.get("/v1/events", params={"types": "no.such"}, headers=scjg)
    assert r.status_code == 422
    r = await client.get("/v1/events", params={"after": "!!"}, headers=scjg)
    assert r.status_code == 422


async def test_metrics_report_consumers(sessionmaker: Any, client: httpx.AsyncClient) -> None:
    """/metrics shows events written, handled per consumer and lag."""
    _reset()
    await _emit(sessionmaker, ev.AGENCY_CREATED, "X")
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert 'inspection_hub_consumer_lag_seconds{consumer="test_recorder_a"}' in r.text
    await drain(sessionmaker, consumers=["test_recorder_a"])
    r = await client.get("/metrics")
    assert "inspection_hub_events_written_total 1.0" in r.text
    assert 'inspection_hub_events_handled_total{consumer="test_recorder_a"} 1.0' in r.text
    assert 'inspection_hub_consumer_lag_seconds{consumer="test_recorder_a"} 0.0' in r.text
