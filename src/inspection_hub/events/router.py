"""Routes: the event feed, parked handler runs (supervisors), and /metrics."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from inspection_hub.auth.deps import Public, authorize
from inspection_hub.auth.principal import Principal, Role
from inspection_hub.config import Settings
from inspection_hub.db.deps import SessionDep
from inspection_hub.errors import NotFound
from inspection_hub.events import metrics, service
from inspection_hub.events.schemas import EventRead, HandlerRunRead
from inspection_hub.kit.schema import Page

router = APIRouter(prefix="/v1/events", tags=["events"])
public_router = APIRouter(tags=["metrics"])

Reader = Annotated[
    Principal,
    Depends(authorize(Role.admin, Role.supervisor, Role.scheduler, Role.approver)),
]
Overseer = Annotated[Principal, Depends(authorize(Role.admin, Role.supervisor))]


@router.get("", response_model=Page[EventRead])
async def event_feed(
    session: SessionDep,
    actor: Reader,
    after: Annotated[str | None, Query(description="The `next_cursor` of the last page")] = None,
    types: Annotated[str | None, Query(description="Comma-separated event types")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[EventRead]:
    """Events after the cursor, oldest first; an agency's roles see their agency's events."""
    wanted = [t.strip() for t in types.split(",") if t.strip()] if types else None
    rows, next_cursor = await service.feed(session, actor, after=after, types=wanted, limit=limit)
    return Page[EventRead](
        items=[EventRead.model_validate(r) for r in rows], next_cursor=next_cursor
    )


@router.get("/parked", response_model=Page[HandlerRunRead])
async def parked_runs(
    session: SessionDep,
    _: Overseer,
    consumer: str | None = None,
    status: Annotated[str, Query(pattern="^(parked|pending)$")] = "parked",
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[HandlerRunRead]:
    """Handler runs that exhausted their attempts (or, with status=pending, are retrying)."""
    rows, next_cursor = await service.list_handler_runs(
        session, status=status, consumer=consumer, cursor=cursor, limit=limit
    )
    return Page[HandlerRunRead](
        items=[HandlerRunRead.model_validate(r) for r in rows], next_cursor=next_cursor
    )


@router.post("/parked/{run_id}/retry", response_model=HandlerRunRead, status_code=202)
async def retry_parked_run(run_id: int, session: SessionDep, actor: Overseer) -> HandlerRunRead:
    """Re-queue a parked handler run (admin, supervisor)."""
    return HandlerRunRead.model_validate(await service.retry_parked(session, actor, run_id))


_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


@public_router.get("/metrics", dependencies=[Depends(Public())], include_in_schema=False)
async def prometheus_metrics(request: Request, session: SessionDep) -> Response:
    """Prometheus metrics; loopback clients only unless `metrics_allow_remote` is set."""
    settings: Settings = request.app.state.settings
    host = request.client.host if request.client else None
    if not settings.metrics_allow_remote and host not in _LOOPBACK:
        raise NotFound("Not found.")
    return Response(
        await metrics.render(session), media_type="text/plain; version=0.0.4; charset=utf-8"
    )
