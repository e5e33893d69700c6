"""The AppError family and RFC 9457 problem details for every error the API returns."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from inspection_hub.db.availability import database_unavailable, outage_summary

log = logging.getLogger(__name__)

PROBLEM_BASE = "https://inspection-hub.example/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"


class AppError(Exception):
    """An error that knows its HTTP status and its stable problem type."""

    status: int = 400
    type: str = "bad-request"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.headers = headers
        self.extra = extra

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        """The RFC 9457 body."""
        body: dict[str, Any] = {
            "type": PROBLEM_BASE + self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        if self.errors is not None:
            body["errors"] = self.errors
        body.update(self.extra)
        return body


class ValidationFailed(AppError):
    """Input is well-formed but invalid; `errors` names every bad field or row."""

    status = 422
    type = "validation-error"
    title = "Validation failed"


class Unauthenticated(AppError):
    """No or unknown credentials."""

    status = 401
    type = "unauthenticated"
    title = "Authentication required"

    def __init__(self, detail: str = "A valid bearer token is required.") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(AppError):
    """Authenticated but not allowed (role or agency)."""

    status = 403
    type = "forbidden"
    title = "Forbidden"


class NotFound(AppError):
    """The resource does not exist or is not visible to the caller."""

    status = 404
    type = "not-found"
    title = "Not found"


class Conflict(AppError):
    """The request conflicts with the current state (duplicate, illegal transition)."""

    status = 409
    type = "conflict"
    title = "Conflict"


class Gone(AppError):
    """The resource existed but is no longer usable (expired link)."""

    status = 410
    type = "gone"
    title = "Gone"


class PreconditionFailed(AppError):
    """If-Match named a version that is no longer current."""

    status = 412
    type = "precondition-failed"
    title = "Precondition failed"


class PayloadTooLarge(AppError):
    """The request body exceeds the configured limit."""

    status = 413
    type = "payload-too-large"
    title = "Payload too large"


class UnsupportedMediaType(AppError):
    """The body's content type is not accepted here."""

    status = 415
    type = "unsupported-media-type"
    title = "Unsupported media type"


class DatabaseUnavailable(AppError):
    """The database cannot be reached right now (restarting, refusing connections, or the
    connection dropped mid-statement); decision D33."""

    status = 503
    type = "database-unavailable"
    title = "Service unavailable"
    retry_after_s = 2

    def __init__(self) -> None:
        super().__init__(
            "The database cannot be reached right now. Retry after the time in Retry-After. If "
            "this was a write, it may or may not have taken effect: read the resource before "
            "repeating it, or repeat it with the same Idempotency-Key where the route takes one.",
            headers={"Retry-After": str(self.retry_after_s)},
        )


class TooManyRequests(AppError):
    """Rate limit exceeded."""

    status = 429
    type = "rate-limited"
    title = "Too many requests"


def problem_response(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> JSONResponse:
    """A JSONResponse with the problem media type."""
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _loc_to_field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) if parts else str(loc[-1]) if loc else ""


def install_error_handlers(app: FastAPI) -> None:
    """Map every error to an RFC 9457 problem; never leak a stack trace."""

    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> JSONResponse:
        return problem_response(exc.status, exc.to_problem(request.url.path), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for err in exc.errors():
            loc = err.get("loc", ())
            errors.append(
                {
                    "field": _loc_to_field(loc),
                    "location": str(loc[0]) if loc else "",
                    "detail": err.get("msg", "invalid"),
                    "code": err.get("type", "invalid"),
                }
            )
        body = ValidationFailed(f"{len(errors)} field(s) are invalid.", errors=errors).to_problem(
            request.url.path
        )
        return problem_response(422, body)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        slug = {404: "not-found", 405: "method-not-allowed", 401: "unauthenticated"}.get(
            exc.status_code, f"http-{exc.status_code}"
        )
        body = {
            "type": PROBLEM_BASE + slug,
            "title": str(exc.detail) if exc.status_code != 404 else "Not found",
            "status": exc.status_code,
            "detail": str(exc.detail),
            "instance": request.url.path,
        }
        return problem_response(exc.status_code, body, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
        if database_unavailable(exc):
            return _unavailable_response(request, exc)
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        body = {
            "type": PROBLEM_BASE + "internal-error",
            "title": "Internal error",
            "status": 500,
            "detail": "An internal error occurred; it has been logged.",
            "instance": request.url.path,
        }
        return problem_response(500, body)


def _unavailable_response(request: Request, exc: BaseException) -> JSONResponse:
    """503 with Retry-After for an error `database_unavailable` recognised; one warning line."""
    log.warning(
        "database unavailable on %s %s: %s", request.method, request.url.path, outage_summary(exc)
    )
    err = DatabaseUnavailable()
    return problem_response(err.status, err.to_problem(request.url.path), err.headers)
