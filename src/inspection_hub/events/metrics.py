"""Prometheus metrics: outbox and consumer figures read from the database at scrape time.

Read from the database, they are the same whichever process is scraped (API, worker replicas);
`inspection_hub_webhook_attempts_total` counts the attempts of the scraped process only.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from inspection_hub.events.registry import consumers, discover_handlers

_LAG = text(
    """
    SELECT extract(epoch FROM now() - least(
        (SELECT min(e.occurred_at) FROM event e
         WHERE e.type = ANY(CAST(:types AS varchar[]))
           AND (e.commit_order, e.id)
               > (COALESCE(c.position_order, 0), COALESCE(c.position_id, 0))),
        (SELECT min(e.occurred_at) FROM handler_run hr JOIN event e ON e.id = hr.event_id
         WHERE hr.consumer = :c)))
    FROM (SELECT 1) AS one
    LEFT JOIN consumer_cursor c ON c.consumer = :c
    """
)


class _Snapshot(Collector):
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def collect(self) -> Iterator[Metric]:
        d = self.data
        written = CounterMetricFamily(
            "inspection_hub_events_written", "Events written to the outbox (highest event id)."
        )
        written.add_metric([], d["written"])
        yield written
        handled = CounterMetricFamily(
            "inspection_hub_events_handled", "Events handled, per consumer.", labels=["consumer"]
        )
        failed = CounterMetricFamily(
            "inspection_hub_events_failed",
            "Handler failures (each failed attempt), per consumer.",
            labels=["consumer"],
        )
        for name, h, f in d["cursors"]:
            handled.add_metric([name], h)
            failed.add_metric([name], f)
        yield handled
        yield failed
        runs = GaugeMetricFamily(
            "inspection_hub_handler_runs",
            "Handler runs owed: pending (retrying or waiting) and parked, per consumer.",
            labels=["consumer", "status"],
        )
        for name, status, n in d["runs"]:
            runs.add_metric([name, status], n)
        yield runs
        lag = GaugeMetricFamily(
            "inspection_hub_consumer_lag_seconds",
            "Age of the oldest event a consumer has not handled yet (0 when caught up).",
            labels=["consumer"],
        )
        for name, seconds in d["lag"]:
            lag.add_metric([name], seconds)
        yield lag
        deliveries = GaugeMetricFamily(
            "inspection_hub_webhook_deliveries",
            "Webhook deliveries by status.",
            labels=["status"],
        )
        for status, n in d["deliveries"]:
            deliveries.add_metric([status], n)
        yield deliveries


async def render(session: AsyncSession) -> bytes:
    """The metrics exposition, in Prometheus text format."""
    discover_handlers()
    data: dict[str, Any] = {}
    data["written"] = (
        await session.execute(text("SELECT COALESCE(max(id), 0) FROM event"))
    ).scalar_one()
    data["cursors"] = [
        tuple(r)
        for r in await session.execute(
            text("SELECT consumer, handled_count, failed_count FROM consumer_cursor")
        )
    ]
    data["runs"] = [
        tuple(r)
        for r in await session.execute(
            text("SELECT consumer, status, count(*) FROM handler_run GROUP BY 1, 2")
        )
    ]
    lag: list[tuple[str, float]] = []
    for consumer in consumers().values():
        seconds = (
            await session.execute(_LAG, {"c": consumer.name, "types": sorted(consumer.event_types)})
        ).scalar_one()
        lag.append((consumer.name, float(seconds or 0.0)))
    data["lag"] = lag
    data["deliveries"] = [
        tuple(r)
        for r in await session.execute(
            text("SELECT status, count(*) FROM webhook_delivery GROUP BY 1")
        )
    ]
    registry = CollectorRegistry()
    registry.register(_Snapshot(data))
    return generate_latest(REGISTRY) + generate_latest(registry)
