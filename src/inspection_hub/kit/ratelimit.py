"""Per-client-IP token buckets for the public routes (/public/*, /s/*, /c/*), in process.

Each replica keeps its own buckets, so the effective limit behind a load balancer is the per-replica
limit times the replica count; docs/scaling.md says how to enforce it at the edge instead.
"""

from __future__ import annotations

import json
import math
import time
from collections import OrderedDict
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from inspection_hub.errors import PROBLEM_BASE

PUBLIC_PREFIXES = ("/public/", "/s/", "/c/")


class TokenBuckets:
    """Token buckets keyed by client; least recently seen clients are evicted past `max_clients`."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_clients: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str) -> float:
        """Take one token for `key`; return 0 when allowed, else the seconds until one is free."""
        now = self.clock()
        tokens, last = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait


class RateLimitMiddleware:
    """Answers 429 (problem+json, Retry-After) when a client exceeds its public-route budget."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        rate: float,
        burst: int,
        prefixes: tuple[str, ...] = PUBLIC_PREFIXES,
    ) -> None:
        self.app = app
        self.prefixes = prefixes
        self.buckets = TokenBuckets(rate, burst) if rate > 0 and burst > 0 else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.buckets is None
            or scope["type"] != "http"
            or not str(scope["path"]).startswith(self.prefixes)
        ):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        wait = self.buckets.take(client[0] if client else "unknown")
        if wait <= 0:
            await self.app(scope, receive, send)
            return
        retry_after = max(1, math.ceil(wait))
        body = json.dumps(
            {
                "type": PROBLEM_BASE + "too-many-requests",
                "title": "Too many requests",
                "status": 429,
                "detail": f"请求过于频繁，请 {retry_after} 秒后再试。 "
                f"Too many requests from this address; retry in {retry_after} s.",
            },
            ensure_ascii=False,
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(retry_after).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
