"""Runs the discovered periodic jobs on APScheduler 3 (AsyncIOScheduler).

Each run opens a session, takes `pg_try_advisory_xact_lock` on the job id (another replica
running the same job now means this run is skipped), calls the job and commits.
"""

from __future__ import annotations

import logging

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inspection_hub.db.availability import log_pass_failure
from inspection_hub.db.locking import try_xact_lock
from inspection_hub.scheduler.registry import Job, discover_jobs

log = logging.getLogger(__name__)

LOCK_NAMESPACE = "scheduler.job"


async def run_job(sessionmaker: async_sessionmaker[AsyncSession], job: Job) -> bool:
    """Run one job once under its advisory lock; False when another replica holds it."""
    async with sessionmaker() as session, session.begin():
        if not await try_xact_lock(session, LOCK_NAMESPACE, job.id):
            log.info("job skipped: running elsewhere", extra={"job": job.id})
            return False
        await job.fn(session)
    return True


async def _run_logged(sessionmaker: async_sessionmaker[AsyncSession], job: Job) -> None:
    try:
        await run_job(sessionmaker, job)
    except Exception as exc:
        log_pass_failure(log, "job failed", exc, job=job.id)


def start_scheduler(
    sessionmaker: async_sessionmaker[AsyncSession], jobs: dict[str, Job] | None = None
) -> AsyncIOScheduler:
    """Start an AsyncIOScheduler running every job at its interval (no overlapping runs)."""
    scheduler = AsyncIOScheduler(timezone="UTC")
    for job in (jobs if jobs is not None else discover_jobs()).values():
        scheduler.add_job(
            _run_logged,
            "interval",
            seconds=job.seconds,
            args=(sessionmaker, job),
            id=job.id,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, job.seconds),
        )
    scheduler.start()
    return scheduler
