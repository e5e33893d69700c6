"""ASGI middleware: request ids, one structured log line per request, size limit, headers."""

from __future__ import annotations

import itertools
import json
import logging
import os
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from inspection_hub.errors import PROBLEM_BASE
from inspection_hub.kit.context import request_id_var

log = logging.getLogger("inspection_hub.request")

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        b"script-src 'self'; frame-ancestors 'none'",
    ),
]


# Request ids: a random prefix per process and a counter (unique across replicas and restarts
# with overwhelming probability, and a fraction of the cost of uuid4 per request). The prefix is
# drawn again in a forked child, so workers never share one.
_id_state: dict[str, Any] = {"pid": -1, "prefix": "", "counter": itertools.count(1)}


def _new_request_id() -> str:
    if _id_state["pid"] != os.getpid():
        _id_state.update(pid=os.getpid(), prefix=uuid.uuid4().hex[:16], counter=itertools.count(1))
    return f"{_id_state['prefix']}{next(_id_state['counter']):016x}"


class RequestContextMiddleware:
    """Assigns a request id, refuses oversized bodies by Content-Length, logs once."""

    def __init__(self, app: ASGIApp, *, max_body: int, docs_paths: tuple[str, ...]) -> None:
        self.app = app
        self.max_body = max_body
        self.docs_paths = docs_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        rid = headers.get(b"x-request-id", b"").decode("latin-1")[:64] or _new_request_id()
        token = request_id_var.set(rid)
        started = time.perf_counter()
        status = 500
        path: str = scope["path"]

        declared = headers.get(b"content-length")
        if declared and declared.isdigit() and int(declared) > self.max_body:
            body = json.dumps(
                {
                    "type": PROBLEM_BASE + "payload-too-large",
                    "title": "Payload too large",
                    "status": 413,
                    "detail": f"The body exceeds the limit of {self.max_body} bytes.",
                }
            ).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 413,
                    "headers": [
                        (b"content-type", b"application/problem+json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"connection", b"close"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            request_id_var.reset(token)
            return

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                extra: list[Any] = [(b"x-request-id", rid.encode())]
                if not path.startswith(self.docs_paths):
                    extra.extend(SECURITY_HEADERS)
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            log.info(
                "request",
                extra={
                    "method": scope.get("method"),
                    "path": _redact(path),
                    "status": status,
                    "ms": round((time.perf_counter() - started) * 1000, 2),
                    "request_id": rid,
                },
            )
            request_id_var.reset(token)


# /s/{token} is the enterprise-facing survey page (web); the log must not carry its token.
_SECRET_PATH_PREFIXES = ("/public/v1/surveys/", "/s/")


def _redact(path: str) -> str:
    """Paths that carry a bearer secret (survey link tokens) are logged without it."""
    for prefix in _SECRET_PATH_PREFIXES:
        if path.startswith(prefix):
            rest = path[len(prefix) :]
            tail = rest.split("/", 1)[1] if "/" in rest else ""
            return prefix + "{token}" + ("/" + tail if tail else "")
    return path
