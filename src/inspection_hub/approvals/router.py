"""Routes: /v1/check-requests (unplanned checks and the head's decisions, 机关负责人审批)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, status
from fastapi.responses import Response

from inspection_hub.approvals import service
from inspection_hub.approvals.schemas import (
    CheckRequestCreate,
    CheckRequestRead,
    DecisionBody,
    read_json,
    read_of,
)
from inspection_hub.approvals.state import Action, CheckRequestStatus
from inspection_hub.auth.deps import authorize
from inspection_hub.auth.principal import Principal, Role
from inspection_hub.config import Settings
from inspection_hub.db.deps import SessionDep, autocommit_connection
from inspection_hub.db.session import unit_of_work
from inspection_hub.kit import idempotency
from inspection_hub.kit.etag import parse_if_match
from inspection_hub.kit.handread import HandRead, HeaderParam
from inspection_hub.kit.schema import Page

router = APIRouter(prefix="/v1/check-requests", tags=["check requests"])

Scheduler = Annotated[Principal, Depends(authorize(Role.scheduler))]
Approver = Annotated[Principal, Depends(authorize(Role.approver))]
Reader = Annotated[
    Principal,
    Depends(
        authorize(Role.scheduler, Role.approver, Role.supervisor, Role.admin, agency_param="agency")
    ),
]
IF_MATCH_DESCRIPTION = "The version the decision is based on."
IfMatch = Annotated[str | None, Header(description=IF_MATCH_DESCRIPTION)]

# The hottest routes read their body and headers by hand (kit/handread.py, decision D27);
# OpenAPI documents them as if declared.
_DECISION = HandRead(
    DecisionBody, required=False, headers=(HeaderParam("if-match", IF_MATCH_DESCRIPTION),)
)
_SUBMISSION = HandRead(
    CheckRequestCreate, required=True, headers=(HeaderParam("idempotency-key", max_length=200),)
)


def _etag(version: int) -> dict[str, str]:
    return {"ETag": f'"{version}"'}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=CheckRequestRead,
    responses={409: {"description": "The Idempotency-Key is still in flight."}},
    openapi_extra=_SUBMISSION.openapi(),
)
async def submit_check_request(request: Request, actor: Scheduler) -> Response:
    """File an unplanned check for the agency head's approval; answers with the pre-check."""
    body, headers = await _SUBMISSION.read_required(request)
    idempotency_key = headers["idempotency-key"]
    settings: Settings = request.app.state.settings
    if idempotency_key is None and not body.emergency:
        # The common case: one statement on a pooled connection, no session, no transaction.
        async with autocommit_connection(request) as conn:
            view = await service.submit_at_once(conn, actor, body, settings=settings)
        content = read_json(view.row, view.precheck)
    else:
        async with idempotency.guard(request, actor, idempotency_key, body) as keyed:
            if keyed.replay is not None:
                return keyed.replay.response()
            async with unit_of_work(request.app.state.sessionmaker) as session:
                view = await service.submit(session, actor, body, settings=settings)
                content = read_json(view.row, view.precheck)
                await keyed.complete(session, status.HTTP_201_CREATED, content.decode())
    return Response(
        content,
        status_code=status.HTTP_201_CREATED,
        media_type="application/json",
        headers={
            **_etag(view.row["version"]),
            "Location": f"/v1/check-requests/{view.row['id']}",
        },
    )


@router.get("", response_model=Page[CheckRequestRead])
async def list_check_requests(
    session: SessionDep,
    viewer: Reader,
    status_: Annotated[CheckRequestStatus | None, Query(alias="status")] = None,
    agency: Annotated[str | None, Query(max_length=32)] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[CheckRequestRead]:
    """The queue, oldest first: agency officials see their own agency's, supervisors all."""
    rows, next_cursor = await service.list_requests(
        session,
        viewer,
        status=status_.value if status_ else None,
        agency=agency,
        cursor=cursor,
        limit=limit,
    )
    return Page[CheckRequestRead](items=[read_of(r) for r in rows], next_cursor=next_cursor)


@router.get("/{request_id}", response_model=CheckRequestRead)
async def get_check_request(request_id: int, request: Request, viewer: Reader) -> Response:
    """One request with a fresh pre-check (history, cap, merge candidates, findings)."""
    async with autocommit_connection(request) as conn:
        view = await service.read_request(
            conn, viewer, request_id, settings=request.app.state.settings
        )
    # Serialised here: the model was built from the database row just now, so FastAPI's
    # response validation would only check it again (response_model still documents it).
    return Response(
        read_json(view.row, view.precheck),
        media_type="application/json",
        headers=_etag(view.row["version"]),
    )


async def _decide(
    request: Request,
    actor: Principal,
    request_id: int,
    action: Action,
    comment: str | None,
    if_match: str | None,
) -> Response:
    settings: Settings = request.app.state.settings
    version = parse_if_match(if_match)
    async with autocommit_connection(request) as conn:
        row = await service.decide_at_once(
            conn, actor, request_id, action, comment=comment, if_match=version, settings=settings
        )
    if row is None:  # an emergency request's inspection to cancel too: several statements
        async with unit_of_work(request.app.state.sessionmaker) as session:
            row = await service.decide(
                session,
                actor,
                request_id,
                action,
                comment=comment,
                if_match=version,
                settings=settings,
            )
    return Response(
        read_json(row),
        media_type="application/json",
        headers=_etag(row["version"]),
    )


@router.post(
    "/{request_id}/approve", response_model=CheckRequestRead, openapi_extra=_DECISION.openapi()
)
async def approve_check_request(request_id: int, request: Request, actor: Approver) -> Response:
    """Approve (agency head, not the requester); creates the unplanned inspection."""
    body, headers = await _DECISION.read(request)
    comment = body.comment if body else None
    if_match = headers["if-match"]
    return await _decide(request, actor, request_id, Action.approve, comment, if_match)


@router.post("/{request_id}/reject", response_model=CheckRequestRead)
async def reject_check_request(
    request_id: int,
    body: DecisionBody,
    request: Request,
    actor: Approver,
    if_match: IfMatch = None,
) -> Response:
    """Reject with a comment (agency head, not the requester); an emergency check is cancelled."""
    return await _decide(request, actor, request_id, Action.reject, body.comment, if_match)


@router.post(
    "/{request_id}/withdraw", response_model=CheckRequestRead, openapi_extra=_DECISION.openapi()
)
async def withdraw_check_request(request_id: int, request: Request, actor: Scheduler) -> Response:
    """Withdraw a pending request (its requester only)."""
    body, headers = await _DECISION.read(request)
    comment = body.comment if body else None
    if_match = headers["if-match"]
    return await _decide(request, actor, request_id, Action.withdraw, comment, if_match)
