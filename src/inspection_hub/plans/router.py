"""Routes: /v1/plans, /v1/draws and the public plan and draw records (一公开)."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, status
from fastapi.responses import Response

from inspection_hub.auth.deps import Public, authorize
from inspection_hub.auth.principal import Principal, Role
from inspection_hub.config import Settings
from inspection_hub.db.deps import SessionDep
from inspection_hub.kit import idempotency
from inspection_hub.kit.etag import parse_if_match
from inspection_hub.kit.schema import Page
from inspection_hub.kit.timeutil import local_today
from inspection_hub.plans import service
from inspection_hub.plans.schemas import DrawRead, PlanCreate, PlanRead, VerifyRead
from inspection_hub.plans.state import PlanStatus

router = APIRouter(tags=["plans"])
public_router = APIRouter(prefix="/public/v1", tags=["public"], dependencies=[Depends(Public())])

Scheduler = Annotated[Principal, Depends(authorize(Role.scheduler, Role.admin))]
Reader = Annotated[Principal, Depends(authorize(agency_param="agency"))]
IfMatch = Annotated[str | None, Header()]


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _one(session: SessionDep, plan_id: int, actor: Principal) -> PlanRead:
    plan = await service.get_plan(session, actor, plan_id)
    return (await service.read_plans(session, [plan]))[0]


def _with_etag(read: PlanRead, response: Response) -> PlanRead:
    response.headers["ETag"] = f'"{read.version}"'
    return read


@router.post(
    "/v1/plans",
    status_code=status.HTTP_201_CREATED,
    response_model=PlanRead,
    responses={409: {"description": "The Idempotency-Key is still in flight."}},
)
async def create_plan(
    body: PlanCreate,
    request: Request,
    session: SessionDep,
    actor: Scheduler,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> Response:
    """File a draft annual plan (scheduler; a joint plan lists several agencies incl. yours)."""
    settings = _settings(request)
    async with idempotency.guard(request, actor, idempotency_key, body) as keyed:
        if keyed.replay is not None:
            return keyed.replay.response()
        policy = service.policy_book(settings).at(local_today())
        plan = await service.create_plan(session, actor, body, policy)
        read = await _one(session, plan.id, actor)
        content = read.model_dump_json()
        await keyed.complete(session, status.HTTP_201_CREATED, content)
    return Response(
        content,
        status_code=status.HTTP_201_CREATED,
        media_type="application/json",
        headers={"ETag": f'"{read.version}"'},
    )


@router.get("/v1/plans", response_model=Page[PlanRead])
async def list_plans(
    session: SessionDep,
    actor: Reader,
    year: int | None = None,
    agency: str | None = None,
    status: PlanStatus | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Page[PlanRead]:
    """Plans of your agency (all for admin and supervisor), newest first."""
    plans, next_cursor = await service.list_plans(
        session,
        actor,
        year=year,
        agency=agency,
        status=status.value if status else None,
        cursor=cursor,
        limit=limit,
    )
    return Page[PlanRead](items=await service.read_plans(session, plans), next_cursor=next_cursor)


@router.get("/v1/plans/{plan_id}", response_model=PlanRead)
async def get_plan(
    plan_id: int,
    response: Response,
    session: SessionDep,
    actor: Annotated[Principal, Depends(authorize())],
) -> PlanRead:
    """One plan with its items (seeds only once drawn)."""
    return _with_etag(await _one(session, plan_id, actor), response)


@router.post("/v1/plans/{plan_id}/submit", response_model=PlanRead)
async def submit_plan(
    plan_id: int,
    response: Response,
    session: SessionDep,
    actor: Scheduler,
    if_match: IfMatch = None,
) -> PlanRead:
    """Submit a draft: items frozen, seeds generated, their SHA-256 commitments published."""
    await service.submit_plan(session, actor, plan_id, parse_if_match(if_match))
    return _with_etag(await _one(session, plan_id, actor), response)


@router.post("/v1/plans/{plan_id}/withdraw", response_model=PlanRead)
async def withdraw_plan(
    plan_id: int,
    response: Response,
    session: SessionDep,
    actor: Scheduler,
    if_match: IfMatch = None,
) -> PlanRead:
    """Withdraw a draft plan."""
    await service.withdraw_plan(session, actor, plan_id, parse_if_match(if_match))
    return _with_etag(await _one(session, plan_id, actor), response)


@router.post("/v1/plans/{plan_id}/draw", response_model=PlanRead)
async def draw_plan(
    plan_id: int,
    request: Request,
    response: Response,
    session: SessionDep,
    actor: Scheduler,
    if_match: IfMatch = None,
) -> PlanRead:
    """Run the verifiable draw of every item; creates the scheduled inspections (all or nothing)."""
    await service.draw_plan(session, actor, plan_id, parse_if_match(if_match), _settings(request))
    return _with_etag(await _one(session, plan_id, actor), response)


@router.post("/v1/plans/{plan_id}/publish", response_model=PlanRead)
async def publish_plan(
    plan_id: int,
    response: Response,
    session: SessionDep,
    actor: Scheduler,
    if_match: IfMatch = None,
) -> PlanRead:
    """Publish a drawn plan (一公开)."""
    await service.publish_plan(session, actor, plan_id, parse_if_match(if_match))
    return _with_etag(await _one(session, plan_id, actor), response)


@router.get("/v1/draws/{draw_id}", response_model=DrawRead)
async def get_draw(
    draw_id: int, session: SessionDep, actor: Annotated[Principal, Depends(authorize())]
) -> DrawRead:
    """A draw record: seed, commitment, population digest and sizes, the result."""
    return service.draw_read(await service.get_draw(session, actor, draw_id), with_result=True)


@router.get("/v1/draws/{draw_id}/verify", response_model=VerifyRead)
async def verify_draw(
    draw_id: int, session: SessionDep, actor: Annotated[Principal, Depends(authorize())]
) -> VerifyRead:
    """Re-run the draw from the stored seed and population: match, or every difference."""
    outcome = service.verify_draw(await service.get_draw(session, actor, draw_id, full=True))
    return VerifyRead(match=outcome.match, differences=list(outcome.differences))


def _export_response(export: dict[str, object], draw_id: int) -> Response:
    body = json.dumps(export, ensure_ascii=False, separators=(",", ":"))
    return Response(
        body.encode("utf-8"),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="draw-{draw_id}.json"'},
    )


@router.get("/v1/draws/{draw_id}/export", response_class=Response)
async def export_draw(
    draw_id: int, session: SessionDep, actor: Annotated[Principal, Depends(authorize())]
) -> Response:
    """The self-contained draw export; check it offline with `inspection-hub draw verify FILE`."""
    draw = await service.get_draw(session, actor, draw_id, full=True)
    return _export_response(service.export_draw_record(draw), draw.id)


@public_router.get("/plans", response_model=Page[PlanRead])
async def public_plans(
    session: SessionDep,
    year: int | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Page[PlanRead]:
    """Published plans and their items (一公开; no login)."""
    plans, next_cursor = await service.public_plans(session, year, cursor, limit)
    return Page[PlanRead](items=await service.read_plans(session, plans), next_cursor=next_cursor)


@public_router.get("/draws/{draw_id}", response_model=DrawRead)
async def public_draw(draw_id: int, session: SessionDep) -> DrawRead:
    """A draw record with its revealed seed (no login)."""
    return service.draw_read(await service.get_draw(session, None, draw_id), with_result=True)


@public_router.get("/draws/{draw_id}/export", response_class=Response)
async def public_draw_export(draw_id: int, session: SessionDep) -> Response:
    """The draw export for anyone to re-verify (no login)."""
    draw = await service.get_draw(session, None, draw_id, full=True)
    return _export_response(service.export_draw_record(draw), draw.id)
