"""Starting and stopping the in-process background pieces (event workers, scheduler)."""

from __future__ import annotations

from fastapi import FastAPI

from inspection_hub.config import Settings


async def start_background(app: FastAPI) -> None:
    """Start the event workers and the scheduler when the settings ask for them."""
    settings: Settings = app.state.settings
    app.state.event_worker = None
    app.state.scheduler = None
    if settings.workers_enabled:
        from inspection_hub.events.worker import EventWorker

        worker = EventWorker(app.state.engine, app.state.sessionmaker, app.state.http, settings)
        await worker.start()
        app.state.event_worker = worker
    if settings.scheduler_enabled:
        from inspection_hub.scheduler.runner import start_scheduler

        app.state.scheduler = start_scheduler(app.state.sessionmaker)


async def stop_background(app: FastAPI) -> None:
    """Stop them gracefully: the scheduler lets running jobs end; deliveries finish or release."""
    scheduler = getattr(app.state, "scheduler", None)
    if scheduler is not None:
        scheduler.shutdown(wait=False)
        app.state.scheduler = None
    worker = getattr(app.state, "event_worker", None)
    if worker is not None:
        await worker.stop()
        app.state.event_worker = None
