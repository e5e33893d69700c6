"""Starting and stopping the in-process background pieces (event workers, scheduler)."""

from __future__ import annotations

from fastapi import FastAPI


async def start_background(app: FastAPI) -> None:
    """Start the event workers and the scheduler when the settings ask for them."""
    app.state.background_tasks = []


async def stop_background(app: FastAPI) -> None:
    """Stop them gracefully."""
    app.state.background_tasks = []
