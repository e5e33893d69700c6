"""Declaring periodic jobs next to their domain.

    @job("approvals.deadline_sweep", seconds=60)
    async def sweep(session: AsyncSession) -> None: ...

A job only opens a session (done for it), calls a service and commits (done for it). It
must be safe when several replicas run it at once: the runner takes a per-job advisory
lock, and jobs claim rows with SKIP LOCKED or conditional updates.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

JobFn = Callable[[AsyncSession], Awaitable[None]]


@dataclass(frozen=True)
class Job:
    """A periodic job: its id, interval and function."""

    id: str
    seconds: int
    fn: JobFn


_JOBS: dict[str, Job] = {}


def job(job_id: str, *, seconds: int) -> Callable[[JobFn], JobFn]:
    """Register a periodic job running every `seconds`."""

    def wrap(fn: JobFn) -> JobFn:
        _JOBS[job_id] = Job(job_id, seconds, fn)
        return fn

    return wrap


def discover_jobs() -> dict[str, Job]:
    """Import every `inspection_hub.<domain>.scheduled` module; return the jobs."""
    import inspection_hub

    for mod in pkgutil.iter_modules(inspection_hub.__path__):
        if not mod.ispkg:
            continue
        try:
            importlib.import_module(f"inspection_hub.{mod.name}.scheduled")
        except ModuleNotFoundError as exc:
            if exc.name != f"inspection_hub.{mod.name}.scheduled":
                raise
    return dict(_JOBS)
