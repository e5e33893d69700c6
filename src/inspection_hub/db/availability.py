"""Whether an error means the database cannot be reached right now (decision D33).

Such an error is neither the request's fault nor a bug: the server is restarting, shutting down,
refusing connections, or dropped the connection mid-statement. The API answers it with 503 and
Retry-After instead of a 500, and logs one warning line instead of a traceback.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

import asyncpg
from sqlalchemy.exc import DBAPIError

# Class 08 (connection exception) and the operator-intervention states a restart produces:
# 57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now (starting or stopping).
_SHUTDOWN_STATES = frozenset({"57P01", "57P02", "57P03"})
_CONNECT_MODULE = "asyncpg/connect_utils.py"


class ConnectionLost(Exception):
    """A driver error on a statement-pool connection the server has closed, raised from it.

    After a server-side termination asyncpg reports the next statement on that connection as
    "connection was closed", "connection is closed" or "cannot switch to state …; another
    operation is in progress", whichever the timing gives; the connection being closed is what
    they share (SQLAlchemy's asyncpg dialect asks the same question, `is_closed()`, to
    invalidate a connection). `db.deps.autocommit_connection` raises this in their place.
    """


def connection_closed(connection: Any) -> bool:
    """An asyncpg connection is closed, or a pool already took it back because it was lost
    (asyncpg then refuses every call on the proxy still held): the server ended it."""
    try:
        return bool(connection.is_closed())
    except asyncpg.InterfaceError:
        return True


def database_unavailable(exc: BaseException) -> bool:
    """True when ``exc``, or an error it wraps, says the database is out of reach."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionLost):
            return True
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        state = getattr(current, "sqlstate", None)
        if isinstance(state, str) and (state.startswith("08") or state in _SHUTDOWN_STATES):
            return True
        if isinstance(current, OSError) and _raised_connecting(current):
            return True
        wrapped = current.orig if isinstance(current, DBAPIError) else None
        current = current.__cause__ or wrapped
    return False


def _raised_connecting(exc: OSError) -> bool:
    """An OSError from asyncpg opening a connection (refused, no socket, unknown host): the
    driver raises these unwrapped, from either pool."""
    return any(
        frame.filename.replace("\\", "/").endswith(_CONNECT_MODULE)
        for frame in traceback.extract_tb(exc.__traceback__)
    )


def outage_summary(exc: BaseException) -> str:
    """The error's type and first line, for the one warning an outage is logged as."""
    text = str(exc)
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def log_pass_failure(
    logger: logging.Logger, message: str, exc: BaseException, **extra: Any
) -> None:
    """A background loop's failed pass (the relay, the webhook claim, a scheduled job): one
    WARNING line when the database is out of reach, since the loop retries on its next pass
    and a routine restart should page no one; otherwise ERROR with the traceback."""
    if database_unavailable(exc):
        logger.warning(
            "%s: database unavailable (%s); retrying",
            message,
            outage_summary(exc),
            extra=extra or None,
        )
    else:
        logger.error(message, exc_info=exc, extra=extra or None)
