"""Reading a JSON body and a header by hand on the hottest routes, exactly as FastAPI would.

For each parameter it declares, FastAPI spends work on every request: a body parameter parses
the Content-Type through `email.message`, decodes the JSON and validates it through the field's
adapter, and a header parameter goes through `request_params_to_args`. On an approval that was
7 % of the app's instructions (decision D27). The decision routes therefore take the request
and call `read_json_body` / `header`, and declare the same parameters to OpenAPI through
`openapi_extra` (`json_body_openapi`, `header_openapi`), so the document stays the one FastAPI
generated from the declared parameters. tests/approvals/test_hand_read_body.py compares both,
document and answers, with the declared form.
"""

from __future__ import annotations

import inspect
import json
from functools import lru_cache
from typing import Any, TypeVar

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter, ValidationError

M = TypeVar("M", bound=BaseModel)

_DOCUMENTED: dict[str, type[BaseModel]] = {}
"""Models that only hand-read bodies use: their schemas go into the OpenAPI components."""


@lru_cache(maxsize=32)
def _optional_adapter(model: type[BaseModel]) -> TypeAdapter[Any]:
    nullable: Any = model | None
    return TypeAdapter(nullable)


def _is_json(content_type: str | None) -> bool:
    """FastAPI's test (through email.message): application/json or application/*+json."""
    if not content_type:
        return False
    media = content_type.partition(";")[0].strip().lower()
    if media.count("/") != 1:
        return False
    main, sub = media.split("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))


def _invalid(errors: list[dict[str, Any]]) -> RequestValidationError:
    return RequestValidationError(errors)


async def read_json_body(request: Request, model: type[M]) -> M | None:
    """The body as FastAPI reads `body: model | None = None`: None when empty or JSON null,
    else the validated model; a 422 (RequestValidationError, loc under "body") otherwise."""
    raw = await request.body()
    if not raw:
        return None
    value: Any = raw  # FastAPI validates the raw bytes when the body is not JSON
    if _is_json(request.headers.get("content-type")):
        try:
            value = json.loads(raw)
        except UnicodeDecodeError as exc:  # FastAPI: any other failure to parse is a 400
            raise HTTPException(400, "There was an error parsing the body") from exc
        except json.JSONDecodeError as exc:
            raise _invalid(
                [
                    {
                        "type": "json_invalid",
                        "loc": ("body", exc.pos),
                        "msg": "JSON decode error",
                        "input": {},
                        "ctx": {"error": exc.msg},
                    }
                ]
            ) from exc
    try:
        result: M | None = _optional_adapter(model).validate_python(value, from_attributes=True)
    except ValidationError as exc:
        raise _invalid(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)]
        ) from exc
    return result


def header(request: Request, name: str) -> str | None:
    """A header as FastAPI reads `Annotated[str | None, Header()]` (the first value, or None)."""
    return request.headers.get(name)


def json_body_openapi(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI requestBody FastAPI documents for `body: model | None = None`."""
    _DOCUMENTED[model.__name__] = model
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {
        "content": {
            "application/json": {"schema": {"anyOf": [ref, {"type": "null"}], "title": "Body"}}
        }
    }


def header_openapi(name: str, description: str) -> dict[str, Any]:
    """The OpenAPI parameter FastAPI documents for `Annotated[str | None, Header(description=)]`."""
    title = "-".join(part.capitalize() for part in name.split("-"))
    return {
        "description": description,
        "in": "header",
        "name": name,
        "required": False,
        "schema": {
            "anyOf": [{"type": "string"}, {"type": "null"}],
            "description": description,
            "title": title,
        },
    }


def _declared_route(model: type[BaseModel]) -> APIRoute:
    """A route that declares `body: model | None = None`, for FastAPI to document."""

    async def endpoint(body: Any = None) -> None:
        return None

    parameter = inspect.Parameter(
        "body", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=model | None
    )
    endpoint.__signature__ = inspect.Signature([parameter])  # type: ignore[attr-defined]
    return APIRoute("/", endpoint, methods=["POST"])


def add_documented_schemas(document: dict[str, Any]) -> None:
    """Put the schemas of hand-read bodies' models into an OpenAPI document's components, as
    FastAPI itself generates them for a declared body (nested models included)."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for _name, model in sorted(_DOCUMENTED.items()):
        generated = get_openapi(title="-", version="-", routes=[_declared_route(model)])
        for name, schema in generated.get("components", {}).get("schemas", {}).items():
            schemas.setdefault(name, schema)
