"""A body and header read by hand (kit/handread.py, D27) mean what FastAPI's declared parameters
mean: the same OpenAPI document and the same answer, good or bad, for every kind of input."""

from __future__ import annotations

import json
from typing import Annotated, Any

import httpx
import pytest
from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse

from inspection_hub.approvals.router import IF_MATCH_DESCRIPTION
from inspection_hub.approvals.schemas import CheckRequestCreate, DecisionBody
from inspection_hub.config import Settings
from inspection_hub.errors import install_error_handlers
from inspection_hub.kit.handread import HandRead, HeaderParam, add_documented_schemas
from inspection_hub.main import create_app

IfMatch = Annotated[str | None, Header(description=IF_MATCH_DESCRIPTION)]
IdempotencyKey = Annotated[str | None, Header(max_length=200)]
OPTIONAL = HandRead(
    DecisionBody, required=False, headers=(HeaderParam("if-match", IF_MATCH_DESCRIPTION),)
)
REQUIRED = HandRead(
    CheckRequestCreate, required=True, headers=(HeaderParam("idempotency-key", max_length=200),)
)


def _twin_app() -> FastAPI:
    """Each kind of route twice: /declared/... as FastAPI reads it, /hand/... read by hand."""
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/declared/optional")
    async def declared(if_match: IfMatch = None, body: DecisionBody | None = None) -> JSONResponse:
        return JSONResponse({"comment": body.comment if body else None, "if_match": if_match})

    @app.post("/hand/optional", openapi_extra=OPTIONAL.openapi())
    async def hand(request: Request) -> JSONResponse:
        body, headers = await OPTIONAL.read(request)
        return JSONResponse(
            {"comment": body.comment if body else None, "if_match": headers["if-match"]}
        )

    @app.post("/declared/required")
    async def declared_required(
        body: CheckRequestCreate, idempotency_key: IdempotencyKey = None
    ) -> JSONResponse:
        return JSONResponse({"body": body.model_dump(mode="json"), "key": idempotency_key})

    @app.post("/hand/required", openapi_extra=REQUIRED.openapi())
    async def hand_required(request: Request) -> JSONResponse:
        body, headers = await REQUIRED.read_required(request)
        return JSONResponse(
            {"body": body.model_dump(mode="json"), "key": headers["idempotency-key"]}
        )

    return app


@pytest.mark.parametrize("kind", ["optional", "required"])
def test_the_documented_operation_is_the_declared_one(kind: str) -> None:
    document = _twin_app().openapi()
    declared = document["paths"][f"/declared/{kind}"]["post"]
    hand = document["paths"][f"/hand/{kind}"]["post"]
    for part in ("parameters", "requestBody", "responses"):
        assert hand[part] == declared[part], part
    assert len(hand["parameters"]) == 1


def test_a_model_only_read_by_hand_still_gets_its_schema() -> None:
    document = _twin_app().openapi()
    alone = FastAPI()
    alone.post("/hand", openapi_extra=REQUIRED.openapi())(lambda: None)
    only_hand = alone.openapi()
    assert "CheckRequestCreate" not in only_hand.get("components", {}).get("schemas", {})
    add_documented_schemas(only_hand)
    for name, schema in document["components"]["schemas"].items():
        assert only_hand["components"]["schemas"][name] == schema, name


def test_the_service_documents_its_hand_read_routes_as_declared() -> None:
    app = create_app(Settings(env="test", token_pepper="p" * 40, session_secret="s" * 40))
    paths = app.openapi()["paths"]
    twin = _twin_app().openapi()["paths"]
    for action in ("approve", "withdraw"):
        operation = paths[f"/v1/check-requests/{{request_id}}/{action}"]["post"]
        assert operation["requestBody"] == twin["/declared/optional"]["post"]["requestBody"]
        assert operation["parameters"][0]["name"] == "request_id"
        assert operation["parameters"][1:] == twin["/declared/optional"]["post"]["parameters"]
    submission = paths["/v1/check-requests"]["post"]
    assert submission["requestBody"] == twin["/declared/required"]["post"]["requestBody"]
    assert submission["parameters"][0]["name"] == "idempotency-key"
    assert submission["parameters"][0]["schema"]["anyOf"][0]["maxLength"] == 200
    assert "422" in submission["responses"]
    schemas = app.openapi()["components"]["schemas"]
    assert {"DecisionBody", "CheckRequestCreate", "HTTPValidationError"} <= set(schemas)


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


async def _both(kind: str, content: bytes, headers: Any) -> tuple[httpx.Response, httpx.Response]:
    """POST the same input to /declared/<kind> and /hand/<kind>; the two answers."""
    transport = httpx.ASGITransport(app=_twin_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        declared = await client.post(f"/declared/{kind}", content=content, headers=headers)
        hand = await client.post(f"/hand/{kind}", content=content, headers=headers)
    return declared, hand


@pytest.mark.parametrize(("name", "content", "headers"), CASES, ids=[c[0] for c in CASES])
async def test_every_input_gets_the_declared_answer(
    name: str, content: bytes, headers: Any
) -> None:
    declared, hand = await _both("optional", content, headers)
    assert _comparable(hand) == _comparable(declared), name
    if name == "a comment":
        assert hand.json() == {"comment": "同意", "if_match": None}
    if name == "two If-Match headers":
        assert hand.json()["if_match"] == '"1"'
    if name == "no body, If-Match":
        assert hand.json() == {"comment": None, "if_match": '"3"'}
    if name in ("broken JSON", "too long", "an unknown field", "not JSON by type"):
        assert hand.status_code == 422, name


GOOD = {
    "agency": "SCJG",
    "enterprise": "91310000MA1FL3LX2K",
    "matters": ["SCJG-001"],
    "basis": "complaint",
    "reason": "投诉",
    "window": {"start": "2026-12-07", "end": "2026-12-08"},
}
REQUIRED_CASES: list[tuple[str, bytes, Any]] = [
    ("a good body", json.dumps(GOOD).encode(), JSON),
    ("a good body and key", json.dumps(GOOD).encode(), {**JSON, "idempotency-key": "k-1"}),
    ("no body", b"", JSON),
    ("no body, no type", b"", {}),
    ("JSON null", b"null", JSON),
    ("empty object", b"{}", JSON),
    ("a bad window", json.dumps({**GOOD, "window": {"start": "x"}}).encode(), JSON),
    ("an unknown field", json.dumps({**GOOD, "x": 1}).encode(), JSON),
    ("a key too long", json.dumps(GOOD).encode(), {**JSON, "idempotency-key": "k" * 201}),
    ("a key too long and no body", b"", {"idempotency-key": "k" * 201}),
    ("a key too long and a bad body", b"{}", {**JSON, "idempotency-key": "k" * 201}),
    ("a key too long and broken JSON", b"{", {**JSON, "idempotency-key": "k" * 201}),
    ("not JSON by type", json.dumps(GOOD).encode(), {"content-type": "text/plain"}),
    ("invalid UTF-8", b'{"reason": "\xff"}', JSON),
]


@pytest.mark.parametrize(
    ("name", "content", "headers"), REQUIRED_CASES, ids=[c[0] for c in REQUIRED_CASES]
)
async def test_a_required_body_gets_the_declared_answer(
    name: str, content: bytes, headers: Any
) -> None:
    declared, hand = await _both("required", content, headers)
    assert _comparable(hand) == _comparable(declared), name
    if name.startswith("a good body"):
        assert hand.status_code == 200
        assert hand.json()["body"]["enterprise"] == GOOD["enterprise"]
    else:
        assert hand.status_code in (400, 422), name
    if name == "a key too long and a bad body":  # both reported at once, the header first
        fields = [e["location"] for e in hand.json()["errors"]]
        assert fields[0] == "header"
        assert "body" in fields
