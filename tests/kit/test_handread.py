"""A body and header read by hand (kit/handread.py, D27) mean what FastAPI's declared parameters
mean: the same OpenAPI document and the same answer, good or bad, for every kind of input."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import pytest
from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse

from inspection_hub.approvals.router import IF_MATCH_DESCRIPTION
from inspection_hub.approvals.schemas import DecisionBody
from inspection_hub.config import Settings
from inspection_hub.errors import install_error_handlers
from inspection_hub.kit.handread import (
    add_documented_schemas,
    header,
    header_openapi,
    json_body_openapi,
    read_json_body,
)
from inspection_hub.main import create_app

IfMatch = Annotated[str | None, Header(description=IF_MATCH_DESCRIPTION)]


def _twin_app() -> FastAPI:
    """POST /x/declared as FastAPI reads it, POST /x/hand as the decision routes read it."""
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/x/declared")
    async def declared(if_match: IfMatch = None, body: DecisionBody | None = None) -> JSONResponse:
        return JSONResponse({"comment": body.comment if body else None, "if_match": if_match})

    @app.post(
        "/y/hand",
        openapi_extra={
            "parameters": [header_openapi("if-match", IF_MATCH_DESCRIPTION)],
            "requestBody": json_body_openapi(DecisionBody),
        },
    )
    async def hand(request: Request) -> JSONResponse:
        body = await read_json_body(request, DecisionBody)
        return JSONResponse(
            {"comment": body.comment if body else None, "if_match": header(request, "if-match")}
        )

    return app


def test_the_documented_operation_is_the_declared_one() -> None:
    app = _twin_app()
    document = app.openapi()
    declared = document["paths"]["/x/declared"]["post"]
    hand = document["paths"]["/y/hand"]["post"]
    assert hand["parameters"] == declared["parameters"]
    assert hand["requestBody"] == declared["requestBody"]
    assert hand["parameters"][0]["name"] == "if-match"

    # A model only hand-read routes use still gets its component schema.
    alone = FastAPI()
    alone.post("/y/hand", openapi_extra={"requestBody": json_body_openapi(DecisionBody)})(
        lambda: None
    )
    only_hand = alone.openapi()
    assert "DecisionBody" not in only_hand.get("components", {}).get("schemas", {})
    add_documented_schemas(only_hand)
    assert (
        only_hand["components"]["schemas"]["DecisionBody"]
        == document["components"]["schemas"]["DecisionBody"]
    )


def test_the_service_documents_its_decisions_as_declared() -> None:
    document = create_app(Settings(env="test", token_pepper="p" * 40, session_secret="s" * 40))
    paths = document.openapi()["paths"]
    twin = _twin_app().openapi()["paths"]["/x/declared"]["post"]
    for action in ("approve", "withdraw"):
        operation = paths[f"/v1/check-requests/{{request_id}}/{action}"]["post"]
        assert operation["requestBody"] == twin["requestBody"], action
        assert operation["parameters"][1:] == twin["parameters"], action
        assert operation["parameters"][0]["name"] == "request_id"
    assert "DecisionBody" in document.openapi()["components"]["schemas"]


JSON = {"content-type": "application/json"}

CASES: list[tuple[str, bytes, Any]] = [
    ("no body", b"", {}),
    ("no body, If-Match", b"", {"if-match": '"3"'}),
    ("empty object", b"{}", JSON),
    ("a comment", '{"comment": " 同意 "}'.encode(), JSON),
    ("JSON null", b"null", JSON),
    (
        "charset parameter",
        b'{"comment": "ok"}',
        {"content-type": "application/json; charset=utf-8"},
    ),
    ("+json type", b'{"comment": "ok"}', {"content-type": "application/merge-patch+json"}),
    ("upper case type", b'{"comment": "ok"}', {"content-type": "Application/JSON"}),
    ("a number for the comment", b'{"comment": 5}', JSON),
    ("an unknown field", b'{"comment": "x", "approve": true}', JSON),
    ("a list", b"[1, 2]", JSON),
    ("a string", b'"yes"', JSON),
    ("broken JSON", b'{"comment": ', JSON),
    ("trailing garbage", b'{"comment": "x"} x', JSON),
    ("too long", ('{"comment": "' + "长" * 4001 + '"}').encode(), JSON),
    ("a NUL character", b'{"comment": "a\\u0000b"}', JSON),
    ("not JSON by type", b'{"comment": "x"}', {"content-type": "text/plain"}),
    ("no content type", b'{"comment": "x"}', {}),
    ("a malformed type", b'{"comment": "x"}', {"content-type": "application/json/x"}),
    ("form data", b"comment=x", {"content-type": "application/x-www-form-urlencoded"}),
    ("invalid UTF-8", b'{"comment": "\xff"}', JSON),
    ("two If-Match headers", b"", [("if-match", '"1"'), ("if-match", '"2"')]),
]


def _comparable(response: httpx.Response) -> tuple[int, Any]:
    body = response.json()
    if isinstance(body, dict):
        body.pop("instance", None)  # the path differs by construction
    return response.status_code, body


@pytest.mark.parametrize(("name", "content", "headers"), CASES, ids=[c[0] for c in CASES])
async def test_every_input_gets_the_declared_answer(
    name: str, content: bytes, headers: Any
) -> None:
    transport = httpx.ASGITransport(app=_twin_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        declared = await client.post("/x/declared", content=content, headers=headers)
        hand = await client.post("/y/hand", content=content, headers=headers)
    assert _comparable(hand) == _comparable(declared), name
    if name == "a comment":
        assert hand.json() == {"comment": "同意", "if_match": None}
    if name == "two If-Match headers":
        assert hand.json()["if_match"] == '"1"'
    if name == "no body, If-Match":
        assert hand.json() == {"comment": None, "if_match": '"3"'}
    if name in ("broken JSON", "too long", "an unknown field", "not JSON by type"):
        assert hand.status_code == 422, name
