"""Webhook subscriptions, fan-out of events into deliveries, dead letters and redelivery."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from inspection_hub.audit.service import record
from inspection_hub.auth.principal import Principal
from inspection_hub.errors import Conflict, NotFound, ValidationFailed
from inspection_hub.events import types as event_types
from inspection_hub.events.registry import EventEnvelope
from inspection_hub.kit.pagination import MAX_LIMIT, decode_cursor, encode_cursor
from inspection_hub.webhooks.models import WebhookDelivery, WebhookSubscription
from inspection_hub.webhooks.schemas import SubscriptionCreate
from inspection_hub.webhooks.signing import encrypt_secret, new_secret
from inspection_hub.webhooks.ssrf import UnsafeURL, validate_url_syntax

WEBHOOK_CHANNEL = "inspection_hub_webhooks"

_ENQUEUE = text(
    """
    INSERT INTO webhook_delivery (subscription_id, event_id, webhook_id)
    SELECT s.id, CAST(:event_id AS bigint), 'msg_' || CAST(:event_id AS bigint) || '_' || s.id
    FROM webhook_subscription s
    WHERE s.status = 'active' AND CAST(:type AS varchar) = ANY(s.event_types)
      AND (s.agency_code IS NULL OR s.agency_code = ANY(CAST(:agencies AS varchar[])))
    ON CONFLICT (subscription_id, event_id) DO NOTHING
    """
)


async def enqueue_deliveries(session: AsyncSession, event: EventEnvelope) -> int:
    """One pending delivery per active subscription that wants this event; return how many."""
    result: Any = await session.execute(
        _ENQUEUE,
        {"event_id": event.id, "type": event.type, "agencies": event.agency_codes},
    )
    if result.rowcount:
        await session.execute(text("SELECT pg_notify(:ch, '')"), {"ch": WEBHOOK_CHANNEL})
    return int(result.rowcount or 0)


async def create_subscription(
    session: AsyncSession,
    actor: Principal,
    body: SubscriptionCreate,
    *,
    master_secret: str,
    allow_http: bool,
    allow_private: bool,
) -> tuple[WebhookSubscription, str]:
    """Check the URL (SSRF) and types, store the secret encrypted; return it once."""
    errors: list[dict[str, Any]] = []
    try:
        validate_url_syntax(body.url, allow_http, allow_private=allow_private)
    except UnsafeURL as exc:
        errors.append({"field": "url", "detail": exc.reason})
    known = {t.name for t in event_types.all_types()}
    unknown = sorted(set(body.event_types) - known)
    if unknown:
        errors.append(
            {"field": "event_types", "detail": f"unknown event types: {', '.join(unknown)}"}
        )
    if errors:
        raise ValidationFailed("The subscription is not acceptable.", errors=errors)
    secret = new_secret()
    sub = WebhookSubscription(
        url=body.url,
        event_types=sorted(set(body.event_types)),
        description=body.description,
        agency_code=None if actor.sees_everything else actor.agency_code,
        secret_encrypted=encrypt_secret(secret, master_secret),
        status="active",
        created_by=actor.user_id,
    )
    session.add(sub)
    await session.flush()
    await session.refresh(sub)
    await record(
        session,
        actor,
        "webhook_subscription.create",
        "webhook_subscription",
        sub.id,
        after={
            "url": sub.url,
            "event_types": sub.event_types,
            "agency_code": sub.agency_code,
        },
    )
    return sub, secret


def _visible(actor: Principal, sub: WebhookSubscription) -> bool:
    return actor.sees_everything or (
        sub.agency_code is not None and sub.agency_code == actor.agency_code
    )


async def get_subscription(
    session: AsyncSession, actor: Principal, sub_id: int
) -> WebhookSubscription:
    """A subscription the caller may see (its agency's, or any for admin/supervisor)."""
    sub = await session.get(WebhookSubscription, sub_id)
    if sub is None or sub.status == "deleted" or not _visible(actor, sub):
        raise NotFound(f"Webhook subscription {sub_id} does not exist.")
    return sub


async def list_subscriptions(session: AsyncSession, actor: Principal) -> list[WebhookSubscription]:
    """The subscriptions the caller may see."""
    stmt = select(WebhookSubscription).where(WebhookSubscription.status != "deleted")
    if not actor.sees_everything:
        stmt = stmt.where(WebhookSubscription.agency_code == actor.agency_code)
    return list((await session.scalars(stmt.order_by(WebhookSubscription.id))).all())


async def delete_subscription(session: AsyncSession, actor: Principal, sub_id: int) -> None:
    """Stop a subscription; its pending deliveries fail as 'subscription deleted'."""
    sub = await get_subscription(session, actor, sub_id)
    before = {"status": sub.status}
    sub.status = "deleted"
    await session.execute(
        text(
            "UPDATE webhook_delivery SET status = 'failed', last_error = 'subscription deleted', "
            "updated_at = now() WHERE subscription_id = :s AND status = 'pending'"
        ),
        {"s": sub_id},
    )
    await session.flush()
    await record(
        session,
        actor,
        "webhook_subscription.delete",
        "webhook_subscription",
        sub_id,
        before=before,
        after={"status": "deleted"},
    )


async def list_deliveries(
    session: AsyncSession,
    actor: Principal,
    *,
    status: str | None,
    subscription_id: int | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[WebhookDelivery], str | None]:
    """Deliveries (newest first) of the subscriptions the caller may see."""
    limit = max(1, min(limit, MAX_LIMIT))
    stmt = select(WebhookDelivery).join(
        WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id
    )
    if not actor.sees_everything:
        stmt = stmt.where(WebhookSubscription.agency_code == actor.agency_code)
    if status is not None:
        stmt = stmt.where(WebhookDelivery.status == status)
    if subscription_id is not None:
        stmt = stmt.where(WebhookDelivery.subscription_id == subscription_id)
    after = decode_cursor(cursor)
    if after is not None:
        try:
            stmt = stmt.where(WebhookDelivery.id < int(after[0]))
        except (IndexError, TypeError, ValueError) as exc:
            raise ValidationFailed(
                "The cursor is not valid.", errors=[{"field": "cursor", "detail": "malformed"}]
            ) from exc
    rows = list(await session.scalars(stmt.order_by(WebhookDelivery.id.desc()).limit(limit + 1)))
    next_cursor = encode_cursor([rows[limit - 1].id]) if len(rows) > limit else None
    return rows[:limit], next_cursor


async def redeliver(session: AsyncSession, actor: Principal, delivery_id: int) -> WebhookDelivery:
    """Queue a delivery again now (same webhook-id), e.g. a dead letter after a fix."""
    delivery = await session.get(WebhookDelivery, delivery_id, with_for_update=True)
    sub = (
        None
        if delivery is None
        else await session.get(WebhookSubscription, delivery.subscription_id)
    )
    if delivery is None or sub is None or not _visible(actor, sub):
        raise NotFound(f"Webhook delivery {delivery_id} does not exist.")
    if sub.status != "active":
        raise Conflict(
            f"Subscription {sub.id} is {sub.status}; a delivery cannot be sent to it again."
        )
    before = {"status": delivery.status, "attempts": delivery.attempts}
    await session.execute(
        text(
            "UPDATE webhook_delivery SET status = 'pending', attempts = 0, "
            "next_attempt_at = now(), claimed_until = NULL, delivered_at = NULL, "
            "updated_at = now() WHERE id = :id"
        ),
        {"id": delivery_id},
    )
    await session.execute(text("SELECT pg_notify(:ch, '')"), {"ch": WEBHOOK_CHANNEL})
    await record(
        session,
        actor,
        "webhook_delivery.redeliver",
        "webhook_delivery",
        delivery_id,
        before=before,
        after={"status": "pending", "attempts": 0},
    )
    await session.refresh(delivery)
    return delivery
