"""Routes: /v1/webhook-subscriptions and /v1/webhook-deliveries."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status

from inspection_hub.auth.deps import authorize
from inspection_hub.auth.principal import Principal, Role
from inspection_hub.config import Settings
from inspection_hub.db.deps import SessionDep
from inspection_hub.kit.schema import Page
from inspection_hub.webhooks import service
from inspection_hub.webhooks.schemas import (
    DeliveryRead,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionRead,
)

router = APIRouter(tags=["webhooks"])

Official = Annotated[
    Principal,
    Depends(authorize(Role.admin, Role.supervisor, Role.scheduler, Role.approver)),
]


@router.post(
    "/v1/webhook-subscriptions",
    status_code=status.HTTP_201_CREATED,
    response_model=SubscriptionCreated,
)
async def create_subscription(
    body: SubscriptionCreate, request: Request, session: SessionDep, actor: Official
) -> SubscriptionCreated:
    """Subscribe a URL to event types; the signing secret is returned this once only.

    An agency's scheduler or approver subscribes to its own agency's events only.
    """
    settings: Settings = request.app.state.settings
    sub, secret = await service.create_subscription(
        session,
        actor,
        body,
        master_secret=settings.session_secret,
        allow_http=settings.env != "production",
        allow_private=settings.allow_private_callback_urls,
    )
    read = SubscriptionRead.model_validate(sub)
    return SubscriptionCreated(**read.model_dump(), secret=secret)


@router.get("/v1/webhook-subscriptions", response_model=Page[SubscriptionRead])
async def list_subscriptions(session: SessionDep, actor: Official) -> Page[SubscriptionRead]:
    """The subscriptions the caller may see (its agency's; all for admin and supervisor)."""
    subs = await service.list_subscriptions(session, actor)
    return Page[SubscriptionRead](items=[SubscriptionRead.model_validate(s) for s in subs])


@router.get("/v1/webhook-subscriptions/{sub_id}", response_model=SubscriptionRead)
async def get_subscription(sub_id: int, session: SessionDep, actor: Official) -> SubscriptionRead:
    """One subscription (never its secret)."""
    return SubscriptionRead.model_validate(await service.get_subscription(session, actor, sub_id))


@router.delete("/v1/webhook-subscriptions/{sub_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_subscription(sub_id: int, session: SessionDep, actor: Official) -> Response:
    """Stop a subscription; its pending deliveries are failed."""
    await service.delete_subscription(session, actor, sub_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/v1/webhook-deliveries", response_model=Page[DeliveryRead])
async def list_deliveries(
    session: SessionDep,
    actor: Official,
    status_: Annotated[
        str | None, Query(alias="status", pattern="^(pending|delivered|failed)$")
    ] = None,
    subscription_id: int | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[DeliveryRead]:
    """Deliveries, newest first, with the last response (status=failed: the dead letters)."""
    rows, next_cursor = await service.list_deliveries(
        session,
        actor,
        status=status_,
        subscription_id=subscription_id,
        cursor=cursor,
        limit=limit,
    )
    return Page[DeliveryRead](
        items=[DeliveryRead.model_validate(r) for r in rows], next_cursor=next_cursor
    )


@router.post(
    "/v1/webhook-deliveries/{delivery_id}/redeliver",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DeliveryRead,
)
async def redeliver(delivery_id: int, session: SessionDep, actor: Official) -> DeliveryRead:
    """Send a delivery again (same webhook-id), with a fresh retry schedule."""
    return DeliveryRead.model_validate(await service.redeliver(session, actor, delivery_id))
