"""Agencies, matters and inspectors through the API; problem details on bad input."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

import httpx

from inspection_hub.kit.timeutil import local_today

Headers = Callable[..., Awaitable[dict[str, str]]]


def assert_problem(r: httpx.Response, status: int, type_suffix: str) -> dict:  # type: ignore[type-arg]
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["type"].endswith("/" + type_suffix)
    assert body["status"] == status
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert "Traceback" not in r.text
    return body  # type: ignore[no-any-return]


async def test_create_and_list_agencies(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    for code, name in (("YJGL", "区应急管理局"), ("SCJG", "区市场监管局")):
        r = await client.post("/v1/agencies", json={"code": code, "name": name}, headers=admin)
        assert r.status_code == 201, r.text
        assert r.json() == {"code": code, "name": name}
    r = await client.get("/v1/agencies", headers=admin)
    assert r.status_code == 200
    assert [a["code"] for a in r.json()] == ["SCJG", "YJGL"]


async def test_duplicate_agency_code_is_409(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    body = {"code": "SCJG", "name": "区市场监管局"}
    assert (await client.post("/v1/agencies", json=body, headers=admin)).status_code == 201
    r = await client.post("/v1/agencies", json={**body, "name": "again"}, headers=admin)
    problem = assert_problem(r, 409, "conflict")
    assert "SCJG" in problem["detail"]
    listed = (await client.get("/v1/agencies", headers=admin)).json()
    assert listed == [{"code": "SCJG", "name": "区市场监管局"}]


async def test_unknown_field_is_422_naming_it(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    r = await client.post(
        "/v1/agencies", json={"code": "SCJG", "name": "x", "approver": "me"}, headers=admin
    )
    problem = assert_problem(r, 422, "validation-error")
    assert isinstance(problem["errors"], list)
    assert "approver" in [e["field"] for e in problem["errors"]]
    assert (await client.get("/v1/agencies", headers=admin)).json() == []


async def test_invalid_fields_are_all_listed(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    r = await client.post("/v1/agencies", json={"code": "lower case", "name": ""}, headers=admin)
    problem = assert_problem(r, 422, "validation-error")
    assert {e["field"] for e in problem["errors"]} == {"code", "name"}


async def test_matters_create_and_list(
    client: httpx.AsyncClient, admin: dict[str, str], two_agencies: tuple[str, str]
) -> None:
    r = await client.post(
        "/v1/agencies/SCJG/matters",
        json={"code": "SCJG-002", "name": "产品质量监督抽查", "category": "product_quality"},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    assert r.json()["agency_code"] == "SCJG"
    r = await client.get("/v1/agencies/SCJG/matters", headers=admin)
    assert [m["code"] for m in r.json()] == ["SCJG-001", "SCJG-002"]
    r = await client.get("/v1/agencies/YJGL/matters", headers=admin)
    assert [m["code"] for m in r.json()] == ["YJGL-001"]
    r = await client.post(
        "/v1/agencies/YJGL/matters",
        json={"code": "SCJG-002", "name": "dup", "category": "x"},
        headers=admin,
    )
    assert_problem(r, 409, "conflict")
    r = await client.get("/v1/agencies/NOPE/matters", headers=admin)
    assert_problem(r, 404, "not-found")


async def test_inspectors_lapsed_certificate_and_duplicates(
    client: httpx.AsyncClient, admin: dict[str, str], two_agencies: tuple[str, str]
) -> None:
    today = local_today()
    valid = {
        "name": "王伟",
        "certificate_no": "JS-0001",
        "certificate_valid_until": str(today + timedelta(days=30)),
    }
    lapsed = {
        "name": "李芳",
        "certificate_no": "JS-0002",
        "certificate_valid_until": str(today - timedelta(days=1)),
    }
    for body in (valid, lapsed):
        r = await client.post("/v1/agencies/SCJG/inspectors", json=body, headers=admin)
        assert r.status_code == 201, r.text
    r = await client.get("/v1/agencies/SCJG/inspectors", headers=admin)
    roster = {i["certificate_no"]: i for i in r.json()}
    assert roster["JS-0001"]["certificate_valid"] is True
    assert roster["JS-0002"]["certificate_valid"] is False
    # certificate numbers are unique across agencies
    r = await client.post(
        "/v1/agencies/YJGL/inspectors", json={**valid, "name": "张三"}, headers=admin
    )
    assert_problem(r, 409, "conflict")
    assert (await client.get("/v1/agencies/YJGL/inspectors", headers=admin)).json() == []


async def test_scheduler_writes_only_own_agency(
    client: httpx.AsyncClient, make_headers: Headers, two_agencies: tuple[str, str]
) -> None:
    own = await make_headers("scheduler", "SCJG")
    body = {"name": "赵敏", "certificate_no": "JS-0100", "certificate_valid_until": "2030-01-01"}
    r = await client.post("/v1/agencies/SCJG/inspectors", json=body, headers=own)
    assert r.status_code == 201, r.text
    r = await client.post(
        "/v1/agencies/YJGL/inspectors", json={**body, "certificate_no": "JS-0101"}, headers=own
    )
    assert_problem(r, 403, "forbidden")
    r = await client.get("/v1/agencies/YJGL/inspectors", headers=own)
    assert_problem(r, 403, "forbidden")
