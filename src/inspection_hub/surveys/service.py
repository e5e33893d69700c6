"""Follow-up surveys (跟踪核验): planning, dispatch, reminders, expiry, answers and phone visits.

Hot paths (dispatch, reminders, expiry) are set-based SQL; each transition is a conditional
update or a SKIP LOCKED claim, so several replicas running the jobs send, remind and expire
each survey exactly once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from inspection_hub.audit.service import record
from inspection_hub.auth.principal import Principal
from inspection_hub.errors import Conflict, Gone, NotFound
from inspection_hub.events import types as ev
from inspection_hub.events.outbox import emit
from inspection_hub.policy import (
    PolicyBook,
    PolicyNotInForceError,
    SurveyRules,
    policy_in_force,
)
from inspection_hub.surveys.findings import record_finding
from inspection_hub.surveys.schemas import PhoneVisitCreate, Question, SurveyAnswer

PUBLIC_PATH = "/public/v1/surveys/"

QUESTIONS: tuple[Question, ...] = (
    Question(
        field="occurred",
        text_zh="该次检查是否确实发生？（是/否/不确定）",
        text_en="Did this inspection take place? (yes / no / unsure)",
        answer_type="yes|no|unsure",
    ),
    Question(
        field="visited_on",
        text_zh="检查人员到访的日期",
        text_en="On which date did the inspectors visit?",
        answer_type="date",
    ),
    Question(
        field="inspector_count",
        text_zh="到场检查人员人数",
        text_en="How many inspectors came?",
        answer_type="integer",
    ),
    Question(
        field="certificates_shown",
        text_zh="检查人员是否出示了执法证件",
        text_en="Did the inspectors show their enforcement certificates?",
        answer_type="boolean",
    ),
    Question(
        field="code_scanned",
        text_zh="是否扫描了检查码（扫码入企）",
        text_en="Did you scan the inspection code?",
        answer_type="boolean",
    ),
    Question(
        field="duration_minutes",
        text_zh="检查持续时间（分钟）",
        text_en="How long did the inspection last (minutes)?",
        answer_type="integer",
    ),
    Question(
        field="burden",
        text_zh="检查对经营造成的负担（1 很小 - 5 很大）",
        text_en="How much did the inspection burden your business (1 low - 5 high)?",
        answer_type="1-5",
    ),
    Question(
        field="fees_or_favours_asked",
        text_zh="检查人员是否索要费用、财物或其他好处",
        text_en="Did the inspectors ask for fees, gifts or favours?",
        answer_type="boolean",
    ),
    Question(
        field="items_outside_checklist",
        text_zh="是否检查了检查事项清单以外的内容",
        text_en="Did they check items outside the published checklist?",
        answer_type="boolean",
    ),
    Question(
        field="comments",
        text_zh="其他意见或建议",
        text_en="Any other comments",
        answer_type="text",
    ),
)

#: Contradiction codes, with the message supervisors read (Chinese first).
CONTRADICTIONS: dict[str, str] = {
    "visit_denied": "企业否认检查发生 / the enterprise denies the visit",
    "date_differs": "到访日期与记录相差超过 1 天 / visit date differs by more than a day",
    "fewer_inspectors": "到场人数少于记录 / fewer inspectors than recorded present",
    "certificates_not_shown": "未出示执法证件 / certificates not shown",
    "fees_or_favours_asked": "索要费用或好处 / fees or favours asked",
    "items_outside_checklist": "检查了清单外事项 / items outside the checklist",
}


def _policy_book(path: str | None) -> PolicyBook:
    return policy_in_force(path)


def survey_rules(day: date, policy_path: str | None = None) -> SurveyRules:
    """The survey rules in force on a day (falls back to the defaults when none is)."""
    try:
        return _policy_book(policy_path).at(day).surveys
    except PolicyNotInForceError:
        return SurveyRules()


def hash_token(token: str) -> str:
    """The stored form of a link token (SHA-256, hex)."""
    return hashlib.sha256(token.encode()).hexdigest()


def sample_fraction(seed: str, inspection_id: int) -> float:
    """Where an inspection falls in [0, 1): HMAC-SHA256(seed, id), first 8 bytes."""
    digest = hmac.new(seed.encode(), str(inspection_id).encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def is_sampled(seed: str, inspection_id: int, ratio: float) -> bool:
    """Reproducible sampling: an inspection is surveyed when its fraction is below the ratio."""
    if ratio >= 1.0:
        return True
    return sample_fraction(seed, inspection_id) < ratio


def contradictions(
    answer: dict[str, Any], visit_date: date | None, inspectors_present: int
) -> list[str]:
    """Which parts of an answer contradict the record (empty: none)."""
    found: list[str] = []
    if answer.get("occurred") == "no":
        found.append("visit_denied")
    visited_on = answer.get("visited_on")
    if visited_on and visit_date is not None:
        day = visited_on if isinstance(visited_on, date) else date.fromisoformat(str(visited_on))
        if abs((day - visit_date).days) > 1:
            found.append("date_differs")
    count = answer.get("inspector_count")
    if count is not None and count < inspectors_present:
        found.append("fewer_inspectors")
    if answer.get("certificates_shown") is False:
        found.append("certificates_not_shown")
    if answer.get("fees_or_favours_asked") is True:
        found.append("fees_or_favours_asked")
    if answer.get("items_outside_checklist") is True:
        found.append("items_outside_checklist")
    return found


def canonical_answer(answer: SurveyAnswer) -> dict[str, Any]:
    """The answer as stored: every field, JSON types, for replay comparison."""
    data = answer.model_dump(mode="json", exclude={"contact_name"})
    return {k: data[k] for k in sorted(data)}


async def sampling_seed(session: AsyncSession, year: int) -> str:
    """The year's sampling seed, created once (random, kept secret in the database)."""
    await session.execute(
        text(
            "INSERT INTO survey_sampling_seed (year, seed) VALUES (:y, :s) "
            "ON CONFLICT (year) DO NOTHING"
        ),
        {"y": year, "s": secrets.token_hex(32)},
    )
    seed = (
        await session.execute(
            text("SELECT seed FROM survey_sampling_seed WHERE year = :y"), {"y": year}
        )
    ).scalar_one()
    return str(seed)


async def plan_survey(
    session: AsyncSession,
    enterprise_uscc: str,
    inspection_id: int,
    *,
    policy_path: str | None = None,
) -> int | None:
    """Plan the survey of a completed inspection by policy; idempotent. Returns its id or None."""
    row = (
        (
            await session.execute(
                text(
                    """
                SELECT i.kind, i.status, i.agency_code, i.year, i.visit_date, i.completed_at,
                       e.callback_url
                FROM inspection i JOIN enterprise e ON e.uscc = i.enterprise_uscc
                WHERE i.enterprise_uscc = :u AND i.id = :i
                """
                ),
                {"u": enterprise_uscc, "i": inspection_id},
            )
        )
        .mappings()
        .first()
    )
    if row is None or row["status"] != "completed":
        return None
    completed_at: datetime = row["completed_at"] or datetime.now(UTC)
    rules = survey_rules(row["visit_date"] or completed_at.date(), policy_path)
    ratio = rules.sample_ratio(row["kind"])
    if ratio < 1.0:
        seed = await sampling_seed(session, int(row["year"]))
        if not is_sampled(seed, inspection_id, ratio):
            return None
    due_at = completed_at + timedelta(days=rules.delay_days)
    inserted = (
        await session.execute(
            text(
                """
            INSERT INTO survey (enterprise_uscc, inspection_id, agency_code, year,
                                inspection_kind, status, due_at, callback_url)
            VALUES (:u, :i, :a, :y, :k, 'pending', :due, :cb)
            ON CONFLICT (enterprise_uscc, inspection_id) DO NOTHING
            RETURNING id
            """
            ),
            {
                "u": enterprise_uscc,
                "i": inspection_id,
                "a": row["agency_code"],
                "y": row["year"],
                "k": row["kind"],
                "due": due_at,
                "cb": row["callback_url"],
            },
        )
    ).scalar_one_or_none()
    if inserted is None:
        existing = (
            await session.execute(
                text("SELECT id FROM survey WHERE enterprise_uscc = :u AND inspection_id = :i"),
                {"u": enterprise_uscc, "i": inspection_id},
            )
        ).scalar_one()
        return int(existing)
    payload = {
        "survey_id": inserted,
        "inspection_id": inspection_id,
        "kind": row["kind"],
        "due_at": due_at.isoformat(),
    }
    await emit(
        session,
        ev.SURVEY_PLANNED,
        inserted,
        payload,
        enterprise_uscc=enterprise_uscc,
        agency_codes=[row["agency_code"]],
    )
    return int(inserted)


_EMIT_MANY = text(
    """
    INSERT INTO event (type, type_version, aggregate_type, aggregate_id, aggregate_seq,
                       enterprise_uscc, agency_codes, payload)
    SELECT CAST(:type AS varchar), CAST(:version AS integer), CAST(:agg_type AS varchar),
           x.agg_id,
           COALESCE((SELECT max(e.aggregate_seq) FROM event e
                     WHERE e.aggregate_type = CAST(:agg_type AS varchar)
                       AND e.aggregate_id = x.agg_id), 0) + 1,
           x.uscc, CAST(:agencies AS varchar[]), x.payload
    FROM unnest(CAST(:agg_ids AS varchar[]), CAST(:usccs AS varchar[]),
                CAST(:payloads AS jsonb[])) AS x(agg_id, uscc, payload)
    RETURNING id, aggregate_id
    """
)


async def emit_many(
    session: AsyncSession,
    event_type: ev.EventType,
    rows: Sequence[tuple[int, str, dict[str, Any]]],
    *,
    agency_codes: list[str] | None = None,
) -> dict[int, int]:
    """Write one event per (aggregate id, enterprise, payload) in one statement; id → event id."""
    if not rows:
        return {}
    result = await session.execute(
        _EMIT_MANY,
        {
            "type": event_type.name,
            "version": event_type.version,
            "agg_type": event_type.aggregate,
            "agencies": sorted(set(agency_codes or [])),
            "agg_ids": [str(r[0]) for r in rows],
            "usccs": [r[1] for r in rows],
            "payloads": [json.dumps(r[2], ensure_ascii=False, default=str) for r in rows],
        },
    )
    return {int(agg): int(eid) for eid, agg in result.all()}


_CLAIM_DUE = text(
    """
    SELECT s.enterprise_uscc, s.id, s.inspection_id, s.callback_url, s.due_at
    FROM survey s
    WHERE s.status = 'pending' AND s.due_at <= CAST(:now AS timestamptz)
    ORDER BY s.due_at, s.id
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
    """
)

_MARK_SENT = text(
    """
    UPDATE survey s SET status = 'sent', sent_at = CAST(:now AS timestamptz),
        expires_at = x.expires_at,
        token_hash = x.token_hash,
        callback_status = CASE WHEN s.callback_url IS NULL THEN 'none' ELSE 'pending' END,
        callback_next_at = CASE WHEN s.callback_url IS NULL THEN NULL
            ELSE CAST(:now AS timestamptz) END,
        updated_at = CAST(:now AS timestamptz), version = s.version + 1
    FROM unnest(CAST(:usccs AS char(18)[]), CAST(:ids AS bigint[]),
                CAST(:hashes AS char(64)[]), CAST(:expires AS timestamptz[]))
         AS x(uscc, id, token_hash, expires_at)
    WHERE s.enterprise_uscc = x.uscc AND s.id = x.id
      -- Inside CASE so that PostgreSQL cannot answer it from the pending rows' partial index:
      -- the rows are found by key, one probe each (decision D31).
      AND CASE WHEN s.status = 'pending' THEN true ELSE false END
    """
)

_SET_LINK_EVENT = text(
    """
    UPDATE survey s SET link_event_id = x.event_id
    FROM unnest(CAST(:usccs AS char(18)[]), CAST(:ids AS bigint[]), CAST(:eids AS bigint[]))
         AS x(uscc, id, event_id)
    WHERE s.enterprise_uscc = x.uscc AND s.id = x.id
    """
)


async def dispatch_due(
    session: AsyncSession,
    *,
    public_base_url: str,
    now: datetime | None = None,
    limit: int = 1000,
    policy_path: str | None = None,
) -> int:
    """Send the due surveys: issue each a single-use link (`survey.link_issued`), queue callbacks.

    The clear token is written only into the event payload (for the SMS/letter gateway) and,
    later, into the signed callback body; the survey stores its SHA-256.
    """
    now = now or datetime.now(UTC)
    rows = (await session.execute(_CLAIM_DUE, {"now": now, "limit": limit})).all()
    if not rows:
        return 0
    rules = survey_rules(now.date(), policy_path)
    expires_at = now + timedelta(days=rules.expiry_days)
    base = public_base_url.rstrip("/") + PUBLIC_PATH
    tokens = [secrets.token_urlsafe(32) for _ in rows]
    await session.execute(
        _MARK_SENT,
        {
            "now": now,
            "usccs": [r.enterprise_uscc for r in rows],
            "ids": [r.id for r in rows],
            "hashes": [hash_token(t) for t in tokens],
            "expires": [expires_at] * len(rows),
        },
    )
    events = [
        (
            r.id,
            r.enterprise_uscc,
            {
                "survey_id": r.id,
                "inspection_id": r.inspection_id,
                "enterprise": r.enterprise_uscc,
                "token": token,
                "link": base + token,
                "page_url": public_base_url.rstrip("/") + "/s/" + token,
                "answer_url": base + token + "/answers",
                "expires_at": expires_at.isoformat(),
                "callback": r.callback_url is not None,
            },
        )
        for r, token in zip(rows, tokens, strict=True)
    ]
    # agency_codes left empty: the link is for the enterprise's gateway, not for agencies.
    event_ids = await emit_many(session, ev.SURVEY_LINK_ISSUED, events)
    await session.execute(
        _SET_LINK_EVENT,
        {
            "usccs": [r.enterprise_uscc for r in rows],
            "ids": [r.id for r in rows],
            "eids": [event_ids[r.id] for r in rows],
        },
    )
    return len(rows)


async def remind_unanswered(
    session: AsyncSession, *, now: datetime | None = None, policy_path: str | None = None
) -> int:
    """Remind once, `reminder_days` after sending, for surveys still unanswered."""
    now = now or datetime.now(UTC)
    rules = survey_rules(now.date(), policy_path)
    rows = (
        await session.execute(
            text(
                """
            UPDATE survey SET reminded_at = CAST(:now AS timestamptz),
                updated_at = CAST(:now AS timestamptz), version = version + 1
            WHERE status = 'sent' AND reminded_at IS NULL
                AND sent_at <= CAST(:cutoff AS timestamptz)
              AND expires_at > CAST(:now AS timestamptz)
            RETURNING id, enterprise_uscc, inspection_id, link_event_id
            """
            ),
            {"now": now, "cutoff": now - timedelta(days=rules.reminder_days)},
        )
    ).all()
    await emit_many(
        session,
        ev.SURVEY_REMINDED,
        [
            (r.id, r.enterprise_uscc, {"survey_id": r.id, "inspection_id": r.inspection_id})
            for r in rows
        ],
    )
    return len(rows)


async def expire_unanswered(session: AsyncSession, *, now: datetime | None = None) -> int:
    """Expire, once, the sent surveys whose link has run out."""
    now = now or datetime.now(UTC)
    rows = (
        await session.execute(
            text(
                """
            UPDATE survey SET status = 'expired', expired_at = CAST(:now AS timestamptz),
                updated_at = CAST(:now AS timestamptz),
                callback_status = CASE WHEN callback_status = 'pending' THEN 'dead'
                                       ELSE callback_status END,
                version = version + 1
            WHERE status = 'sent' AND expires_at <= CAST(:now AS timestamptz)
            RETURNING id, enterprise_uscc, inspection_id, agency_code
            """
            ),
            {"now": now},
        )
    ).all()
    await emit_many(
        session,
        ev.SURVEY_EXPIRED,
        [
            (r.id, r.enterprise_uscc, {"survey_id": r.id, "inspection_id": r.inspection_id})
            for r in rows
        ],
    )
    return len(rows)


async def record_summary(
    session: AsyncSession, enterprise_uscc: str, inspection_id: int
) -> dict[str, Any]:
    """What the record says: agency, visit date, matters, inspectors present."""
    row = (
        (
            await session.execute(
                text(
                    """
                SELECT i.agency_code, a.name AS agency_name, i.visit_date,
                       COALESCE((SELECT array_agg(m.name ORDER BY m.code)
                                 FROM inspection_matter im JOIN matter m ON m.code = im.matter_code
                                 WHERE im.enterprise_uscc = i.enterprise_uscc
                                   AND im.inspection_id = i.id), '{}') AS matters,
                       (SELECT count(*) FROM inspection_inspector ii
                        WHERE ii.enterprise_uscc = i.enterprise_uscc
                          AND ii.inspection_id = i.id AND ii.present IS TRUE) AS inspector_count
                FROM inspection i JOIN agency a ON a.code = i.agency_code
                WHERE i.enterprise_uscc = :u AND i.id = :i
                """
                ),
                {"u": enterprise_uscc, "i": inspection_id},
            )
        )
        .mappings()
        .one()
    )
    return {
        "agency_code": row["agency_code"],
        "agency_name": row["agency_name"],
        "visit_date": row["visit_date"],
        "matters": list(row["matters"]),
        "inspector_count": int(row["inspector_count"]),
    }


_BY_TOKEN = text(
    """
    SELECT enterprise_uscc, id, inspection_id, agency_code, status, expires_at, answer,
           answered_at
    FROM survey WHERE token_hash = :h
    """
)


async def survey_for_token(
    session: AsyncSession, token: str, *, for_update: bool = False
) -> dict[str, Any]:
    """The survey a link token opens, or 404 (unknown/forged) / 410 (expired)."""
    if not token or len(token) > 200:
        raise _unknown_link()
    sql = _BY_TOKEN.text + (" FOR UPDATE" if for_update else "")
    row = (await session.execute(text(sql), {"h": hash_token(token)})).mappings().first()
    if row is None:
        raise _unknown_link()
    data = dict(row)
    if data["status"] == "answered":
        return data
    if data["status"] == "expired" or (
        data["expires_at"] is not None and data["expires_at"] <= datetime.now(UTC)
    ):
        raise Gone(
            "该问卷链接已过期，无法再作答。如需反映情况，请联系区司法局。"
            " / This survey link has expired and can no longer be answered.",
        )
    return data


def _unknown_link() -> NotFound:
    return NotFound(
        "问卷链接无效或不存在，请核对短信或信函中的链接。"
        " / This survey link is unknown or invalid; please check the link you received."
    )


async def public_survey(session: AsyncSession, token: str) -> dict[str, Any]:
    """The questions and the record behind a link."""
    row = await survey_for_token(session, token)
    summary = await record_summary(session, row["enterprise_uscc"], row["inspection_id"])
    return {
        "survey_id": row["id"],
        "status": row["status"],
        "expires_at": row["expires_at"],
        "record": summary,
        "questions": [q.model_dump() for q in QUESTIONS],
        "answer": row["answer"],
    }


async def _raise_discrepancy(
    session: AsyncSession,
    *,
    enterprise_uscc: str,
    inspection_id: int,
    survey_id: int,
    found: list[str],
    channel: str,
) -> None:
    await record_finding(
        session,
        "survey_discrepancy",
        enterprise_uscc,
        [inspection_id],
        {
            "survey_id": survey_id,
            "channel": channel,
            "contradictions": found,
            "messages": [CONTRADICTIONS[c] for c in found],
        },
        # Supervisors only: no agency codes, so agency roles neither list nor open it (the
        # inspected agency must not learn which enterprise said what).
        agency_codes=[],
    )


async def submit_answer(
    session: AsyncSession, token: str, answer: SurveyAnswer
) -> tuple[dict[str, Any], bool]:
    """Store the one answer of a survey; returns (receipt, replayed). Same again → replay."""
    row = await survey_for_token(session, token, for_update=True)
    stored = canonical_answer(answer)
    if row["status"] == "answered":
        if row["answer"] == stored:
            return _receipt(row["id"], row["answered_at"], True), True
        raise Conflict(
            "该问卷已经作答，答案不能更改。 / This survey was already answered with a different "
            "answer; an answer cannot be changed.",
        )
    if row["status"] != "sent":
        raise _unknown_link()
    summary = await record_summary(session, row["enterprise_uscc"], row["inspection_id"])
    found = contradictions(stored, summary["visit_date"], summary["inspector_count"])
    now = datetime.now(UTC)
    await session.execute(
        text(
            """
            UPDATE survey SET status = 'answered', answered_at = CAST(:now AS timestamptz),
                answer = CAST(:a AS jsonb),
                answer_channel = 'link', discrepancies = CAST(:d AS varchar[]),
                callback_status = CASE WHEN callback_status = 'pending' THEN 'dead'
                                       ELSE callback_status END,
                updated_at = CAST(:now AS timestamptz), version = version + 1
            WHERE enterprise_uscc = :u AND id = :id AND status = 'sent'
            """
        ),
        {
            "now": now,
            "a": json.dumps(stored, ensure_ascii=False),
            "d": found,
            "u": row["enterprise_uscc"],
            "id": row["id"],
        },
    )
    await emit(
        session,
        ev.SURVEY_ANSWERED,
        row["id"],
        {"survey_id": row["id"], "inspection_id": row["inspection_id"], "channel": "link"},
        enterprise_uscc=row["enterprise_uscc"],
        agency_codes=[],
    )
    await record(session, None, "survey.answer", "survey", row["id"], after={"channel": "link"})
    if found:
        await _raise_discrepancy(
            session,
            enterprise_uscc=row["enterprise_uscc"],
            inspection_id=row["inspection_id"],
            survey_id=row["id"],
            found=found,
            channel="link",
        )
    return _receipt(row["id"], now, False), False


def _receipt(survey_id: int, answered_at: datetime, replayed: bool) -> dict[str, Any]:
    return {
        "survey_id": survey_id,
        "status": "answered",
        "answered_at": answered_at,
        "replayed": replayed,
        "message": "感谢您的反馈，答复已记录。 / Thank you, your answer has been recorded.",
    }


_SURVEY_COLUMNS = """
    id, inspection_id, enterprise_uscc, agency_code, inspection_kind, status, due_at, sent_at,
    expires_at, reminded_at, answered_at, expired_at, callback_status, answer, answer_channel,
    discrepancies
"""


async def get_survey(session: AsyncSession, survey_id: int) -> dict[str, Any]:
    """One survey with its phone visits, or 404."""
    row = (
        (
            await session.execute(
                text(f"SELECT {_SURVEY_COLUMNS} FROM survey WHERE id = :id"), {"id": survey_id}
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"Survey {survey_id} does not exist.")
    visits = (
        (
            await session.execute(
                text(
                    "SELECT id, survey_id, answer, contact_name, called_by_name, discrepancies, "
                    "created_at FROM survey_phone_visit WHERE enterprise_uscc = :u "
                    "AND survey_id = :id ORDER BY id"
                ),
                {"u": row["enterprise_uscc"], "id": survey_id},
            )
        )
        .mappings()
        .all()
    )
    return {**dict(row), "phone_visits": [dict(v) for v in visits]}


async def list_surveys(
    session: AsyncSession,
    principal: Principal,
    *,
    inspection_id: int | None,
    status: str | None,
    after_id: int | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Surveys visible to the caller (agency officials: their agency's only), by id."""
    clauses = ["TRUE"]
    params: dict[str, Any] = {"limit": limit}
    if inspection_id is not None:
        clauses.append("inspection_id = :insp")
        params["insp"] = inspection_id
    if status is not None:
        clauses.append("status = :status")
        params["status"] = status
    if after_id is not None:
        clauses.append("id > :after")
        params["after"] = after_id
    if not principal.sees_everything:
        clauses.append("agency_code = :agency")
        params["agency"] = principal.agency_code
    sql = (
        f"SELECT {_SURVEY_COLUMNS} FROM survey WHERE {' AND '.join(clauses)} "
        "ORDER BY id LIMIT :limit"
    )
    return [dict(r) for r in (await session.execute(text(sql), params)).mappings().all()]


async def record_phone_visit(
    session: AsyncSession, actor: Principal, survey_id: int, visit: PhoneVisitCreate
) -> dict[str, Any]:
    """Record a phone visit; it answers a still-open survey and raises any discrepancy."""
    row = (
        (
            await session.execute(
                text(
                    "SELECT enterprise_uscc, id, inspection_id, status FROM survey "
                    "WHERE id = :id FOR UPDATE"
                ),
                {"id": survey_id},
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"Survey {survey_id} does not exist.")
    stored = canonical_answer(visit)
    summary = await record_summary(session, row["enterprise_uscc"], row["inspection_id"])
    found = contradictions(stored, summary["visit_date"], summary["inspector_count"])
    visit_id = (
        await session.execute(
            text(
                """
            INSERT INTO survey_phone_visit (enterprise_uscc, survey_id, answer, contact_name,
                                            called_by, called_by_name, discrepancies)
            VALUES (:u, :s, CAST(:a AS jsonb), :c, :by, :name, CAST(:d AS varchar[]))
            RETURNING id
            """
            ),
            {
                "u": row["enterprise_uscc"],
                "s": survey_id,
                "a": json.dumps(stored, ensure_ascii=False),
                "c": visit.contact_name,
                "by": actor.user_id,
                "name": actor.display_name or actor.username,
                "d": found,
            },
        )
    ).scalar_one()
    if row["status"] in ("pending", "sent"):
        now = datetime.now(UTC)
        await session.execute(
            text(
                """
                UPDATE survey SET status = 'answered', answered_at = CAST(:now AS timestamptz),
                    answer = CAST(:a AS jsonb), answer_channel = 'phone',
                    discrepancies = CAST(:d AS varchar[]),
                    callback_status = CASE WHEN callback_status = 'pending' THEN 'dead'
                                           ELSE callback_status END,
                    updated_at = CAST(:now AS timestamptz), version = version + 1
                WHERE enterprise_uscc = :u AND id = :id
                """
            ),
            {
                "now": now,
                "a": json.dumps(stored, ensure_ascii=False),
                "d": found,
                "u": row["enterprise_uscc"],
                "id": survey_id,
            },
        )
        await emit(
            session,
            ev.SURVEY_ANSWERED,
            survey_id,
            {"survey_id": survey_id, "inspection_id": row["inspection_id"], "channel": "phone"},
            enterprise_uscc=row["enterprise_uscc"],
            agency_codes=[],
        )
    await record(
        session,
        actor,
        "survey.phone_visit",
        "survey",
        survey_id,
        after={"phone_visit_id": visit_id, "discrepancies": found},
    )
    if found:
        await _raise_discrepancy(
            session,
            enterprise_uscc=row["enterprise_uscc"],
            inspection_id=row["inspection_id"],
            survey_id=survey_id,
            found=found,
            channel="phone",
        )
    visit_row = (
        (
            await session.execute(
                text(
                    "SELECT id, survey_id, answer, contact_name, called_by_name, discrepancies, "
                    "created_at FROM survey_phone_visit WHERE enterprise_uscc = :u AND id = :id"
                ),
                {"u": row["enterprise_uscc"], "id": visit_id},
            )
        )
        .mappings()
        .one()
    )
    return dict(visit_row)
