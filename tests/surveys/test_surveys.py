"""Surveys end to end: planning, dispatch, signed callback to a real receiver, answers, findings."""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from sqlalchemy import text
from standardwebhooks import Webhook

from inspection_hub.events.registry import EventEnvelope
from inspection_hub.surveys import service
from inspection_hub.surveys.delivery import callback_secret_for, deliver_callbacks
from inspection_hub.surveys.findings import record_finding
from inspection_hub.surveys.handlers import plan_on_completion
from tests.surveys import factories
from tests.surveys.receiver import Receiver

COMPLETED = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
VISIT = COMPLETED.date()
WINDOW = (VISIT - timedelta(days=5), VISIT + timedelta(days=5))
ANSWER_OK = {
    "occurred": "yes",
    "visited_on": VISIT.isoformat(),
    "inspector_count": 2,
    "certificates_shown": True,
    "code_scanned": True,
    "duration_minutes": 45,
    "burden": 2,
    "fees_or_favours_asked": False,
    "items_outside_checklist": False,
    "comments": "检查规范",
}


def envelope(uscc: str, inspection_id: int) -> EventEnvelope:
    """An `inspection.completed` event as the worker hands it over."""
    return EventEnvelope(
        id=1,
        type="inspection.completed",
        type_version=1,
        aggregate_type="inspection",
        aggregate_id=str(inspection_id),
        aggregate_seq=2,
        enterprise_uscc=uscc,
        agency_codes=["SCJG"],
        payload={"inspection_id": inspection_id, "enterprise": uscc, "kind": "unplanned"},
        occurred_at=COMPLETED,
    )


async def arrange(
    sessionmaker: Any, settings: Any, callback_url: str | None = None, **kw: Any
) -> tuple[str, int]:
    async with sessionmaker() as s, s.begin():
        uscc = await factories.enterprise(s, callback_url)
        a = await factories.inspector(s, "SCJG", date(2030, 1, 1))
        b = await factories.inspector(s, "SCJG", date(2030, 1, 1))
        iid = await factories.completed_inspection(
            s,
            settings,
            uscc=uscc,
            inspectors=[(a, True), (b, True)],
            window=WINDOW,
            visit_date=VISIT,
            completed_at=COMPLETED,
            **kw,
        )
    return uscc, iid


async def plan_and_send(sessionmaker: Any, settings: Any, uscc: str, iid: int) -> int:
    async with sessionmaker() as s, s.begin():
        await plan_on_completion(s, envelope(uscc, iid))
        await plan_on_completion(s, envelope(uscc, iid))  # redelivered: still one survey
    async with sessionmaker() as s, s.begin():
        sent = await service.dispatch_due(
            s, public_base_url="http://testserver", now=COMPLETED + timedelta(days=1, seconds=1)
        )
    return sent


async def link_token(sessionmaker: Any, survey_id: int) -> str:
    async with sessionmaker() as s:
        payload = (
            await s.execute(
                text(
                    "SELECT payload FROM event WHERE type = 'survey.link_issued' "
                    "AND aggregate_id = :a"
                ),
                {"a": str(survey_id)},
            )
        ).scalar_one()
    return str(payload["token"])


async def survey_row(sessionmaker: Any, iid: int) -> dict[str, Any]:
    async with sessionmaker() as s:
        return dict(
            (await s.execute(text("SELECT * FROM survey WHERE inspection_id = :i"), {"i": iid}))
            .mappings()
            .one()
        )


async def findings(sessionmaker: Any, kind: str) -> list[dict[str, Any]]:
    async with sessionmaker() as s:
        rows = await s.execute(
            text("SELECT * FROM conflict WHERE kind = :k ORDER BY id"), {"k": kind}
        )
        return [dict(r) for r in rows.mappings()]


async def test_signed_callback_answered_through_answer_url_raises_one_finding(
    client: Any, sessionmaker: Any, settings: Any, two_agencies: Any, caplog: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    async with Receiver() as receiver:
        uscc, iid = await arrange(sessionmaker, settings, receiver.url)
        assert await plan_and_send(sessionmaker, settings, uscc, iid) == 1
        import httpx

        async with httpx.AsyncClient() as http:
            delivered = await deliver_callbacks(sessionmaker, http, settings)
    assert delivered == 1
    assert len(receiver.requests) == 1
    req = receiver.requests[0]
    secret = callback_secret_for(settings, uscc)
    message = Webhook(secret).verify(req.body, req.headers)
    with pytest.raises(Exception):  # noqa: B017,PT011 - any other secret must fail
        Webhook(callback_secret_for(settings, "91350100M000100Y43")).verify(req.body, req.headers)
    data = message["data"]
    assert data["record"]["inspector_count"] == 2
    assert data["record"]["visit_date"] == VISIT.isoformat()
    assert data["record"]["agency_name"] == "区市场监管局"
    assert next(q["field"] for q in data["questions"]) == "occurred"
    survey = await survey_row(sessionmaker, iid)
    assert survey["status"] == "sent"
    assert survey["callback_status"] == "delivered"
    token = await link_token(sessionmaker, survey["id"])
    assert data["answer_url"].endswith(f"/public/v1/surveys/{token}/answers")
    assert survey["token_hash"] == service.hash_token(token)
    assert token not in caplog.text
    assert not any(token in str(getattr(r, "path", "")) for r in caplog.records)

    # The enterprise's system answers through the answer URL: it contradicts the record.
    path = urlparse(data["answer_url"]).path
    contradicting = {**ANSWER_OK, "inspector_count": 1, "certificates_shown": False}
    r = await client.post(path, json=contradicting)
    assert r.status_code == 201, r.text
    assert r.json()["replayed"] is False
    again = await client.post(path, json=contradicting)
    assert again.status_code == 200
    assert again.json()["replayed"] is True
    assert not any(token in str(getattr(r, "path", "")) for r in caplog.records)
    other = await client.post(path, json=ANSWER_OK)
    assert other.status_code == 409
    assert other.json()["detail"].startswith("该问卷已经作答")
    found = await findings(sessionmaker, "survey_discrepancy")
    assert len(found) == 1
    assert found[0]["inspection_ids"] == [iid]
    assert found[0]["agency_codes"] == []
    assert found[0]["detail"]["contradictions"] == ["fewer_inspectors", "certificates_not_shown"]
    survey = await survey_row(sessionmaker, iid)
    assert survey["status"] == "answered"
    assert survey["answer"]["inspector_count"] == 1


async def test_public_view_forged_and_expired_links(
    client: Any, sessionmaker: Any, settings: Any, two_agencies: Any
) -> None:
    uscc, iid = await arrange(sessionmaker, settings)
    await plan_and_send(sessionmaker, settings, uscc, iid)
    survey = await survey_row(sessionmaker, iid)
    assert survey["callback_status"] == "none"
    token = await link_token(sessionmaker, survey["id"])
    r = await client.get(f"/public/v1/surveys/{token}")
    assert r.status_code == 200
    body = r.json()
    assert body["record"]["matters"] == ["区市场监管局检查"]
    assert body["questions"][0]["text_zh"].startswith("该次检查")
    forged = await client.get(f"/public/v1/surveys/{token[:-2]}xx")
    assert forged.status_code == 404
    assert forged.json()["detail"].startswith("问卷链接无效")
    r = await client.post(f"/public/v1/surveys/{token}x/answers", json=ANSWER_OK)
    assert r.status_code == 404
    # The link runs out after expiry_days (14): expired exactly once, then 410.
    async with sessionmaker() as s, s.begin():
        assert await service.expire_unanswered(s, now=COMPLETED + timedelta(days=16)) == 1
    async with sessionmaker() as s, s.begin():
        assert await service.expire_unanswered(s, now=COMPLETED + timedelta(days=17)) == 0
    r = await client.post(f"/public/v1/surveys/{token}/answers", json=ANSWER_OK)
    assert r.status_code == 410
    assert r.json()["detail"].startswith("该问卷链接已过期")
    assert (await client.get(f"/public/v1/surveys/{token}")).status_code == 410
    bad = await client.post(f"/public/v1/surveys/{token}/answers", json={"occurred": "maybe"})
    assert bad.status_code == 422


async def test_matching_answer_raises_no_finding_and_reminder_once(
    client: Any, sessionmaker: Any, settings: Any, two_agencies: Any
) -> None:
    uscc, iid = await arrange(sessionmaker, settings)
    await plan_and_send(sessionmaker, settings, uscc, iid)
    sent_at = COMPLETED + timedelta(days=1, seconds=1)
    for day, expected in ((2, 0), (3.5, 1), (3.6, 0), (6, 0)):
        async with sessionmaker() as s, s.begin():
            n = await service.remind_unanswered(s, now=sent_at + timedelta(days=day))
        assert n == expected, day
    async with sessionmaker() as s:
        reminded = (
            await s.execute(text("SELECT count(*) FROM event WHERE type = 'survey.reminded'"))
        ).scalar_one()
    assert reminded == 1
    token = await link_token(sessionmaker, (await survey_row(sessionmaker, iid))["id"])
    r = await client.post(f"/public/v1/surveys/{token}/answers", json=ANSWER_OK)
    assert r.status_code == 201
    assert await findings(sessionmaker, "survey_discrepancy") == []
    async with sessionmaker() as s, s.begin():
        assert await service.expire_unanswered(s, now=sent_at + timedelta(days=30)) == 0


async def test_delay_zero_sends_at_once(
    sessionmaker: Any, settings: Any, two_agencies: Any, tmp_path: Path
) -> None:
    source = Path(__file__).parents[2] / "config" / "policy.toml"
    policy = tmp_path / "policy.toml"
    policy.write_text(source.read_text().replace("delay_days = 1", "delay_days = 0"))
    uscc, iid = await arrange(sessionmaker, settings)
    async with sessionmaker() as s, s.begin():
        sid = await service.plan_survey(s, uscc, iid, policy_path=str(policy))
    assert sid is not None
    async with sessionmaker() as s, s.begin():
        assert await service.dispatch_due(s, public_base_url="http://x", now=COMPLETED) == 1
    async with sessionmaker() as s, s.begin():
        assert await service.dispatch_due(s, public_base_url="http://x", now=COMPLETED) == 0
    assert (await survey_row(sessionmaker, iid))["status"] == "sent"


async def test_default_delay_not_due_before_a_day(
    sessionmaker: Any, settings: Any, two_agencies: Any
) -> None:
    uscc, iid = await arrange(sessionmaker, settings)
    async with sessionmaker() as s, s.begin():
        await service.plan_survey(s, uscc, iid)
    async with sessionmaker() as s, s.begin():
        early = COMPLETED + timedelta(hours=23)
        assert await service.dispatch_due(s, public_base_url="http://x", now=early) == 0


async def test_planned_inspections_sampled_reproducibly(
    sessionmaker: Any, settings: Any, two_agencies: Any
) -> None:
    ids: list[tuple[str, int]] = []
    for _ in range(40):
        ids.append(await arrange(sessionmaker, settings, kind="planned"))
    planned: dict[int, bool] = {}
    async with sessionmaker() as s, s.begin():
        for uscc, iid in ids:
            planned[iid] = await service.plan_survey(s, uscc, iid) is not None
        seed = await service.sampling_seed(s, WINDOW[0].year)
    assert planned == {iid: service.is_sampled(seed, iid, 0.30) for _, iid in ids}
    assert 0 < sum(planned.values()) < 40
    # Joint and unplanned: always.
    uscc, iid = await arrange(sessionmaker, settings, kind="joint")
    async with sessionmaker() as s, s.begin():
        assert await service.plan_survey(s, uscc, iid) is not None


async def test_agencies_see_status_only_supervisors_see_answers_and_phone_visits(
    client: Any, sessionmaker: Any, settings: Any, two_agencies: Any, make_headers: Any
) -> None:
    uscc, iid = await arrange(sessionmaker, settings)
    await plan_and_send(sessionmaker, settings, uscc, iid)
    sup = await make_headers("supervisor", name="监督员")
    scjg = await make_headers("scheduler", "SCJG")
    yjgl = await make_headers("scheduler", "YJGL")
    sid = (await survey_row(sessionmaker, iid))["id"]
    r = await client.post(
        f"/v1/surveys/{sid}/phone-visits",
        json={**ANSWER_OK, "occurred": "no", "contact_name": "张经理"},
        headers=sup,
    )
    assert r.status_code == 201, r.text
    assert r.json()["discrepancies"] == ["visit_denied"]
    assert r.json()["called_by_name"]
    forbidden = await client.post(f"/v1/surveys/{sid}/phone-visits", json=ANSWER_OK, headers=scjg)
    assert forbidden.status_code == 403
    r = await client.get(f"/v1/surveys?inspection={iid}", headers=sup)
    item = r.json()["items"][0]
    assert item["answer"]["occurred"] == "no"
    assert item["answer_channel"] == "phone"
    r = await client.get(f"/v1/surveys?inspection={iid}", headers=scjg)
    item = r.json()["items"][0]
    assert item["status"] == "answered"
    assert "answer" not in item
    assert "discrepancies" not in item
    assert "enterprise_uscc" not in item
    assert (await client.get(f"/v1/surveys?inspection={iid}", headers=yjgl)).json()["items"] == []
    assert (await client.get(f"/v1/surveys/{sid}", headers=scjg)).status_code == 403
    detail = (await client.get(f"/v1/surveys/{sid}", headers=sup)).json()
    assert len(detail["phone_visits"]) == 1
    assert len(await findings(sessionmaker, "survey_discrepancy")) == 1
    r = await client.get("/v1/surveys?status=answered", headers=sup)
    assert [i["id"] for i in r.json()["items"]] == [sid]


async def test_survey_discrepancy_is_in_the_conflict_store_for_supervisors_only(
    client: Any, sessionmaker: Any, settings: Any, two_agencies: Any, make_headers: Any
) -> None:
    uscc, iid = await arrange(sessionmaker, settings)
    await plan_and_send(sessionmaker, settings, uscc, iid)
    sup = await make_headers("supervisor")
    scjg = await make_headers("scheduler", "SCJG")
    sid = (await survey_row(sessionmaker, iid))["id"]
    r = await client.post(
        f"/v1/surveys/{sid}/phone-visits", json={**ANSWER_OK, "occurred": "no"}, headers=sup
    )
    assert r.status_code == 201, r.text
    # A finding the agency may see: a trace check of its own inspection.
    async with sessionmaker() as s, s.begin():
        trace_id = await record_finding(
            s,
            "trace_check_failed",
            uscc,
            [iid],
            {"rule": "visit_in_window"},
            key_suffix="visit_in_window",
            agency_codes=["SCJG"],
        )
    (discrepancy,) = await findings(sessionmaker, "survey_discrepancy")
    everything = (await client.get("/v1/conflicts", headers=sup)).json()["items"]
    assert sorted((c["kind"], c["id"]) for c in everything) == sorted(
        [("survey_discrepancy", discrepancy["id"]), ("trace_check_failed", trace_id)]
    )
    own = (await client.get("/v1/conflicts", headers=scjg)).json()["items"]
    assert [(c["kind"], c["id"]) for c in own] == [("trace_check_failed", trace_id)]
    by_kind = await client.get("/v1/conflicts?kind=survey_discrepancy", headers=scjg)
    assert by_kind.json()["items"] == []
    opened = await client.get(f"/v1/conflicts/{discrepancy['id']}", headers=scjg)
    assert opened.status_code == 403
    assert (await client.get(f"/v1/conflicts/{discrepancy['id']}", headers=sup)).status_code == 200
    # The conflict.detected event of the discrepancy names no agency either.
    async with sessionmaker() as s:
        agencies = (
            await s.execute(
                text(
                    "SELECT agency_codes FROM event WHERE type = 'conflict.detected' "
                    "AND aggregate_id = :a"
                ),
                {"a": str(discrepancy["id"])},
            )
        ).scalar_one()
    assert agencies == []


async def test_failing_receiver_retries_with_backoff(
    sessionmaker: Any, settings: Any, two_agencies: Any
) -> None:
    import httpx

    async with Receiver(status=500) as receiver:
        uscc, iid = await arrange(sessionmaker, settings, receiver.url)
        await plan_and_send(sessionmaker, settings, uscc, iid)
        async with httpx.AsyncClient() as http:
            assert await deliver_callbacks(sessionmaker, http, settings) == 1
            assert await deliver_callbacks(sessionmaker, http, settings) == 0  # backing off
    survey = await survey_row(sessionmaker, iid)
    assert survey["callback_status"] == "pending"
    assert survey["callback_attempts"] == 1
    assert survey["callback_last_error"] == "HTTP 500"
    assert json.dumps(survey["answer"]) == "null"
    # The webhook retry schedule (5 s first, with jitter) applies, not an own backoff.
    wait = (survey["callback_next_at"] - datetime.now(UTC)).total_seconds()
    assert 0 < wait <= 6


async def test_callback_dead_letter_after_the_webhook_schedule_and_same_webhook_id(
    sessionmaker: Any, settings: Any, two_agencies: Any
) -> None:
    import httpx

    short = settings.model_copy(
        update={"webhook_retry_schedule_seconds": [0.0], "webhook_retry_jitter": 0.0}
    )
    async with Receiver(status=503) as receiver:
        uscc, iid = await arrange(sessionmaker, settings, receiver.url)
        await plan_and_send(sessionmaker, settings, uscc, iid)
        async with httpx.AsyncClient() as http:
            assert await deliver_callbacks(sessionmaker, http, short) == 1
            assert (await survey_row(sessionmaker, iid))["callback_status"] == "pending"
            later = datetime.now(UTC) + timedelta(seconds=1)
            assert await deliver_callbacks(sessionmaker, http, short, now=later) == 1
            assert await deliver_callbacks(sessionmaker, http, short, now=later) == 0
    survey = await survey_row(sessionmaker, iid)
    assert survey["callback_status"] == "dead"
    assert survey["callback_attempts"] == 2
    assert survey["callback_last_error"] == "HTTP 503"
    ids = {r.headers["webhook-id"] for r in receiver.requests}
    assert ids == {f"msg_survey_{survey['id']}"}
    assert len(receiver.requests) == 2
