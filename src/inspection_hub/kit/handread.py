"""Reading a JSON body and headers by hand on the hottest routes, exactly as FastAPI would.

For each parameter it declares, FastAPI spends work on every request: a body parameter parses
the Content-Type through `email.message`, decodes the JSON and validates it through the field's
adapter, and a header parameter goes through `request_params_to_args`. On an approval that was
7 % of the app's instructions (decision D27). A few routes therefore take the request and call
`HandRead.read`, and declare the same parameters to OpenAPI through `openapi_extra`
(`HandRead.openapi`); `add_documented_schemas` puts the body's model into the components as
FastAPI generates it. The published document stays the one FastAPI generated from the declared
parameters, and tests/kit/test_handread.py compares both, document and answers, with the
declared form.

One difference, on purpose: the route's dependencies (authorization) run before the body is
parsed, so a caller without the right token gets its 401 or 403 even for a broken body, where
FastAPI parsed the JSON first and answered 422.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any, Generic, TypeVar

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel, StringConstraints, TypeAdapter, ValidationError

M = TypeVar("M", bound=BaseModel)

_DOCUMENTED: dict[str, type[BaseModel]] = {}
"""Models read by hand: their schemas go into the OpenAPI components (`add_documented_schemas`)."""


@dataclass(frozen=True)
class HeaderParam:
    """A string header, as `Annotated[str | None, Header(description=, max_length=)]`."""

    name: str
    description: str | None = None
    max_length: int | None = None

    @cached_property
    def adapter(self) -> TypeAdapter[str | None]:
        if self.max_length is None:
            return TypeAdapter(str | None)
        constrained: Any = Annotated[str, StringConstraints(max_length=self.max_length)] | None
        return TypeAdapter(constrained)

    def openapi(self) -> dict[str, Any]:
        string: dict[str, Any] = {"type": "string"}
        if self.max_length is not None:
            string = {"maxLength": self.max_length, "type": "string"}
        schema: dict[str, Any] = {"anyOf": [string, {"type": "null"}]}
        if self.description is not None:
            schema["description"] = self.description
        schema["title"] = "-".join(part.capitalize() for part in self.name.split("-"))
        parameter: dict[str, Any] = {"in": "header", "name": self.name, "required": False}
        if self.description is not None:
            parameter["description"] = self.description
        return parameter | {"schema": schema}


class HandRead(Generic[M]):
    """A route's JSON body (`model`, required or `model | None = None`) and string headers."""

    def __init__(
        self, model: type[M], *, required: bool, headers: tuple[HeaderParam, ...] = ()
    ) -> None:
        self.model = model
        self.required = required
        self.headers = headers
        nullable: Any = model if required else model | None
        self._adapter: TypeAdapter[M | None] = TypeAdapter(nullable)
        _DOCUMENTED[model.__name__] = model

    def openapi(self) -> dict[str, Any]:
        """`openapi_extra` for the route: the parameters and body FastAPI would document."""
        ref = {"$ref": f"#/components/schemas/{self.model.__name__}"}
        body: dict[str, Any]
        if self.required:
            body = {"content": {"application/json": {"schema": ref}}, "required": True}
        else:
            nullable = {"anyOf": [ref, {"type": "null"}], "title": "Body"}
            body = {"content": {"application/json": {"schema": nullable}}}
        # FastAPI documents a 422 for every route with parameters; with none declared, say so.
        invalid = {"$ref": "#/components/schemas/HTTPValidationError"}
        extra: dict[str, Any] = {
            "requestBody": body,
            "responses": {
                "422": {
                    "content": {"application/json": {"schema": invalid}},
                    "description": "Validation Error",
                }
            },
        }
        if self.headers:
            extra["parameters"] = [h.openapi() for h in self.headers]
        return extra

    async def read(self, request: Request) -> tuple[M | None, dict[str, str | None]]:
        """The validated body (None only when optional and absent or JSON null) and headers;
        every invalid one in one 422 (RequestValidationError), headers first, as FastAPI."""
        value = await _json_value(request)
        errors: list[dict[str, Any]] = []
        headers: dict[str, str | None] = {}
        for param in self.headers:
            raw = request.headers.get(param.name)
            if raw is None:
                headers[param.name] = None
                continue
            try:
                headers[param.name] = param.adapter.validate_python(raw, from_attributes=True)
            except ValidationError as exc:
                errors.extend(_located(exc, ("header", param.name)))
        body: M | None = None
        if value is _ABSENT:
            if self.required:
                errors.append(_missing())
        else:
            try:
                body = self._adapter.validate_python(value, from_attributes=True)
            except ValidationError as exc:
                errors.extend(_located(exc, ("body",)))
        if errors:
            raise RequestValidationError(errors)
        return body, headers

    async def read_required(self, request: Request) -> tuple[M, dict[str, str | None]]:
        """`read` for a required body: never None."""
        body, headers = await self.read(request)
        if body is None:  # a required body's adapter refuses null; kept for the type
            raise RequestValidationError([_missing()])
        return body, headers


def _missing() -> dict[str, Any]:
    return {"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}


_ABSENT: Any = object()


async def _json_value(request: Request) -> Any:
    """The body as FastAPI hands it to validation: absent, parsed JSON or (not JSON) bytes."""
    raw = await request.body()
    if not raw:
        return _ABSENT
    if not _is_json(request.headers.get("content-type")):
        return raw  # FastAPI validates the raw bytes when the body is not JSON
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        error = {
            "type": "json_invalid",
            "loc": ("body", exc.pos),
            "msg": "JSON decode error",
            "input": {},
            "ctx": {"error": exc.msg},
        }
        raise RequestValidationError([error]) from exc
    except ValueError as exc:  # not UTF-8: FastAPI answers any other failure to parse with 400
        raise HTTPException(400, "There was an error parsing the body") from exc


def _is_json(content_type: str | None) -> bool:
    """FastAPI's test (through email.message): application/json or application/*+json."""
    if not content_type:
        return False
    media = content_type.partition(";")[0].strip().lower()
    if media.count("/") != 1:
        return False
    main, sub = media.split("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))


def _located(exc: ValidationError, prefix: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{**error, "loc": (*prefix, *error["loc"])} for error in exc.errors(include_url=False)]


def _declared_route(model: type[BaseModel]) -> APIRoute:
    """A route that declares `body: model` (for FastAPI to document the model)."""

    async def endpoint(body: Any) -> None:
        return None

    parameter = inspect.Parameter("body", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=model)
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
