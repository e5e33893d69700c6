"""Routes: /v1/surveys (supervisors; agencies see status only) and the public survey link."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from inspection_hub.auth.deps import Public, authorize
from inspection_hub.auth.principal import Principal, Role
from inspection_hub.db.deps import SessionDep
from inspection_hub.kit.pagination import decode_cursor, encode_cursor
from inspection_hub.kit.schema import Page
from inspection_hub.surveys import service
from inspection_hub.surveys.schemas import (
    AnswerReceipt,
    PhoneVisitCreate,
    PhoneVisitRead,
    PublicSurvey,
    SurveyAnswer,
    SurveyDetail,
    SurveyRead,
    SurveyStatusRead,
)

router = APIRouter(prefix="/v1/surveys", tags=["surveys"])
public_router = APIRouter(prefix="/public/v1/surveys", tags=["public"])

Official = Annotated[Principal, Depends(authorize())]
Supervisor = Annotated[Principal, Depends(authorize(Role.supervisor, Role.admin))]
Caller = Annotated[None, Depends(Public())]


@router.get("", response_model=Page[SurveyRead] | Page[SurveyStatusRead])
async def list_surveys(
    session: SessionDep,
    principal: Official,
    inspection: Annotated[int | None, Query(description="Inspection id")] = None,
    status: Annotated[Literal["pending", "sent", "answered", "expired"] | None, Query()] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[SurveyRead] | Page[SurveyStatusRead]:
    """Surveys; supervisors see answers, an agency's officials only their surveys' status."""
    key = decode_cursor(cursor)
    rows = await service.list_surveys(
        session,
        principal,
        inspection_id=inspection,
        status=status,
        after_id=int(key[0]) if key else None,
        limit=limit + 1,
    )
    next_cursor = encode_cursor([rows[limit - 1]["id"]]) if len(rows) > limit else None
    rows = rows[:limit]
    if principal.sees_everything:
        return Page[SurveyRead](
            items=[SurveyRead.model_validate(r) for r in rows], next_cursor=next_cursor
        )
    return Page[SurveyStatusRead](
        items=[SurveyStatusRead.model_validate(r) for r in rows], next_cursor=next_cursor
    )


@router.get("/{survey_id}", response_model=SurveyDetail)
async def get_survey(survey_id: int, session: SessionDep, principal: Supervisor) -> SurveyDetail:
    """One survey with its answer and phone visits (supervisors)."""
    return SurveyDetail.model_validate(await service.get_survey(session, survey_id))


@router.post("/{survey_id}/phone-visits", response_model=PhoneVisitRead, status_code=201)
async def record_phone_visit(
    survey_id: int, body: PhoneVisitCreate, session: SessionDep, principal: Supervisor
) -> PhoneVisitRead:
    """Record a phone visit (电话走访) against a survey (supervisors)."""
    return PhoneVisitRead.model_validate(
        await service.record_phone_visit(session, principal, survey_id, body)
    )


@public_router.get("/{token}", response_model=PublicSurvey)
async def open_survey(token: str, session: SessionDep, _: Caller) -> PublicSurvey:
    """The questions and what the record says (问卷), behind a single-use link."""
    return PublicSurvey.model_validate(await service.public_survey(session, token))


@public_router.post(
    "/{token}/answers",
    response_model=AnswerReceipt,
    status_code=201,
    responses={200: {"description": "The same answer again (replay)"}},
)
async def answer_survey(
    token: str, body: SurveyAnswer, session: SessionDep, _: Caller
) -> JSONResponse:
    """Answer the survey once; the same answer again is a 200 replay, a different one 409."""
    receipt, replayed = await service.submit_answer(session, token, body)
    return JSONResponse(
        AnswerReceipt.model_validate(receipt).model_dump(mode="json"),
        status_code=200 if replayed else 201,
    )
