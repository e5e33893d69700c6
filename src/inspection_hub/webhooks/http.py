"""The one shared outbound HTTP client of a process (webhooks, survey callbacks).

Every outbound request goes through one `httpx.AsyncClient` per process (one connection pool,
one TLS context): the API process builds it in its lifespan, `inspection-hub worker|scheduler`
in their main, and both register it here so that scheduled jobs (which only get a session)
use the same one through `shared_client()`.

httpcore asks `import sniffio` on every pool operation; when sniffio is not installed, each of
those failed imports walks the whole `sys.path` (measured: ~0.4 ms, a quarter of a delivery's
CPU time). sniffio is therefore a declared dependency of this project.
"""

from __future__ import annotations

import ssl

import httpx

from inspection_hub.config import Settings
from inspection_hub.webhooks.netbackend import AsyncioTransport

_shared: httpx.AsyncClient | None = None


def make_http_client(
    settings: Settings, *, verify: ssl.SSLContext | bool = True
) -> httpx.AsyncClient:
    """A client sized for the delivery concurrency: no redirects, no proxies from the env, its
    connections on asyncio streams (`netbackend`, decision D30). ``verify``: tests' own CA."""
    size = max(settings.webhook_concurrency, settings.survey_callback_concurrency, 1)
    limits = httpx.Limits(
        max_connections=size, max_keepalive_connections=size, keepalive_expiry=30.0
    )
    return httpx.AsyncClient(
        transport=AsyncioTransport(limits=limits, verify=verify),
        timeout=settings.webhook_timeout_seconds,
        follow_redirects=False,
        trust_env=False,
    )


def set_shared_client(client: httpx.AsyncClient | None) -> None:
    """Register (or, with None, forget) the process's shared client."""
    global _shared
    _shared = client


def shared_client(settings: Settings) -> httpx.AsyncClient:
    """The process's shared client; made (and registered) on first use if nobody did."""
    global _shared
    if _shared is None or _shared.is_closed:
        _shared = make_http_client(settings)
    return _shared
