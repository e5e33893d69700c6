"""Enterprise import: formats, all-or-nothing validation listing every bad row, size limit."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from stdnum.cn import uscc as stdnum_uscc

from inspection_hub.config import Settings
from inspection_hub.enterprises.schemas import ALL_COLUMNS, check_uscc
from inspection_hub.kit.synth import enterprises, make_uscc
from inspection_hub.main import create_app

IMPORT = "/v1/enterprises/import"
CSV = {"Content-Type": "text/csv"}


def rows(n: int, seed: int = 11, start: int = 0) -> list[dict[str, Any]]:
    return list(enterprises(n, seed=seed, start_serial=start))


def to_csv(items: list[dict[str, Any]], columns: tuple[str, ...] = ALL_COLUMNS) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(columns)
    for r in items:
        w.writerow(["" if r.get(c) is None else r.get(c) for c in columns])
    return buf.getvalue()


def wrong_check(code: str) -> str:
    """The same code with a wrong check character."""
    alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    return code[:17] + alphabet[(alphabet.index(code[17]) + 1) % 31]


async def count(sm: async_sessionmaker[AsyncSession], table: str) -> int:
    async with sm() as s:
        return int((await s.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


async def post_csv(client: httpx.AsyncClient, headers: dict[str, str], body: bytes | str) -> Any:
    content = body.encode() if isinstance(body, str) else body
    return await client.post(IMPORT, content=content, headers={**headers, **CSV})


async def test_csv_import_then_reimport_updates(
    client: httpx.AsyncClient, admin: dict[str, str], sessionmaker: Any
) -> None:
    data = rows(50)
    r = await post_csv(client, admin, to_csv(data))
    assert r.status_code == 200, r.text
    assert r.json() == {"created": 50, "updated": 0}
    assert await count(sessionmaker, "enterprise") == 50
    # re-import 20 known + 10 new: known ones are updated, names changed
    changed = [{**e, "name": e["name"] + "（变更）"} for e in data[:20]]
    r = await post_csv(client, admin, to_csv(changed + rows(10, seed=12, start=500)))
    assert r.json() == {"created": 10, "updated": 20}
    assert await count(sessionmaker, "enterprise") == 60
    got = (await client.get(f"/v1/enterprises/{data[0]['uscc']}", headers=admin)).json()
    assert got["name"].endswith("（变更）")
    assert got["version"] == 2


async def test_csv_with_bom_and_lowercase_uscc(
    client: httpx.AsyncClient, admin: dict[str, str], sessionmaker: Any
) -> None:
    data = rows(3)
    lowered = [{**e, "uscc": e["uscc"].lower()} for e in data]
    body = b"\xef\xbb\xbf" + to_csv(lowered).encode()
    r = await post_csv(client, admin, body)
    assert r.status_code == 200, r.text
    assert r.json()["created"] == 3
    r = await client.get(f"/v1/enterprises/{data[0]['uscc']}", headers=admin)
    assert r.json()["uscc"] == data[0]["uscc"]  # stored upper case


async def test_json_import(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    data = rows(4)
    doc = {"enterprises": [{**e, "established_on": str(e["established_on"])} for e in data]}
    r = await client.post(IMPORT, json=doc, headers=admin)
    assert r.status_code == 200, r.text
    assert r.json() == {"created": 4, "updated": 0}
    listed = (await client.get("/v1/enterprises", headers=admin)).json()["items"]
    assert sorted(e["uscc"] for e in listed) == sorted(e["uscc"] for e in data)


async def test_many_bad_rows_all_listed_nothing_written(
    client: httpx.AsyncClient, admin: dict[str, str], sessionmaker: Any
) -> None:
    good = rows(8)
    data = [dict(e) for e in good]
    data[1]["uscc"] = wrong_check(make_uscc("320404", 4242))  # row 3
    data[3]["risk_class"] = "E"  # row 5
    data[4]["district_code"] = "32A404"  # row 6
    data[6]["uscc"] = data[0]["uscc"]  # row 8: duplicate of row 2
    data[7]["established_on"] = "2020-13-45"  # row 9
    r = await post_csv(client, admin, to_csv(data))
    assert r.status_code == 422, r.text
    problem = r.json()
    assert r.headers["content-type"].startswith("application/problem+json")
    found = {(e["row"], e["field"]) for e in problem["errors"]}
    assert found == {
        (3, "uscc"),
        (5, "risk_class"),
        (6, "district_code"),
        (8, "uscc"),
        (9, "established_on"),
    }
    details = {(e["row"], e["field"]): e["detail"] for e in problem["errors"]}
    assert details[(3, "uscc")] == "check character is wrong"
    assert "row 2" in details[(8, "uscc")]
    assert await count(sessionmaker, "enterprise") == 0
    assert await count(sessionmaker, "enterprise_risk_class") == 0
    assert await count(sessionmaker, "audit_log") == 0


async def test_json_bad_rows_name_row_numbers(
    client: httpx.AsyncClient, admin: dict[str, str], sessionmaker: Any
) -> None:
    data: list[dict[str, Any]] = [
        {**e, "established_on": str(e["established_on"])} for e in rows(3)
    ]
    data[2]["uscc"] = "123"
    data[0]["colour"] = "red"
    r = await client.post(IMPORT, json={"enterprises": data}, headers=admin)
    assert r.status_code == 422
    found = {(e["row"], e["field"]) for e in r.json()["errors"]}
    assert found == {(1, "colour"), (3, "uscc")}
    assert await count(sessionmaker, "enterprise") == 0


@pytest.mark.parametrize(
    ("body", "field", "needle"),
    [
        (b"", "file", "empty"),
        (b"   \r\n", "file", "empty"),
        (to_csv([]).encode(), "file", "no rows"),
        ("uscc,名称\r\n1,2\r\n".encode("gbk"), "file", "UTF-8"),
    ],
    ids=["empty", "blank", "header-only", "gbk"],
)
async def test_unreadable_files(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    sessionmaker: Any,
    body: bytes,
    field: str,
    needle: str,
) -> None:
    r = await post_csv(client, admin, body)
    assert r.status_code == 422, r.text
    errors = r.json()["errors"]
    assert errors[0]["field"] == field
    assert needle in errors[0]["detail"]
    assert await count(sessionmaker, "enterprise") == 0


async def test_gbk_encoded_real_rows_refused(
    client: httpx.AsyncClient, admin: dict[str, str], sessionmaker: Any
) -> None:
    body = to_csv(rows(3)).encode("gbk")
    r = await post_csv(client, admin, body)
    assert r.status_code == 422
    assert "not UTF-8" in r.json()["detail"]
    assert await count(sessionmaker, "enterprise") == 0


async def test_unknown_and_missing_columns(
    client: httpx.AsyncClient, admin: dict[str, str], sessionmaker: Any
) -> None:
    cols = ("uscc", "name", "district_code", "industry_code", "colour")
    data = [{**e, "colour": "red"} for e in rows(2)]
    r = await post_csv(client, admin, to_csv(data, cols))
    assert r.status_code == 422
    found = {(e["row"], e["field"], e["detail"]) for e in r.json()["errors"]}
    assert (1, "colour", "unknown column") in found
    assert (1, "risk_class", "required column is missing") in found
    assert await count(sessionmaker, "enterprise") == 0


async def test_wrong_media_type_is_415(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    r = await client.post(
        IMPORT, content=b"x", headers={**admin, "Content-Type": "application/xml"}
    )
    assert r.status_code == 415
    assert r.headers["content-type"].startswith("application/problem+json")


def test_fast_uscc_check_agrees_with_stdnum() -> None:
    import random

    rng = random.Random(5)
    alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXYZIOSV"
    for serial in range(3000):
        good = make_uscc("320404", serial * 7919)
        assert check_uscc(good) == (good, None)
        mutated = list(good)
        mutated[rng.randrange(18)] = rng.choice(alphabet)
        candidate = "".join(mutated)
        code, _reason = check_uscc(candidate)
        assert (code is not None) == stdnum_uscc.is_valid(candidate), candidate
    assert check_uscc(wrong_check(make_uscc("320404", 1)))[1] == "check character is wrong"
    assert check_uscc("91-320404 " + make_uscc("320404", 1)[8:])[0] == make_uscc("320404", 1)


@pytest.fixture(scope="module")
async def small_limit_app(settings: Settings, database_url: str) -> AsyncIterator[Any]:
    """A second app instance on the same database whose upload limit is 4 KiB."""
    small = settings.model_copy(update={"max_upload_bytes": 4096})
    application = create_app(small, database_url)
    async with application.router.lifespan_context(application):
        yield application


async def test_oversized_upload_refused_413(
    small_limit_app: Any, admin: dict[str, str], sessionmaker: Any
) -> None:
    transport = httpx.ASGITransport(app=small_limit_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        # declared by Content-Length: refused before the route runs
        r = await c.post(IMPORT, content=b"x" * 5000, headers={**admin, **CSV})
        assert r.status_code == 413
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["type"].endswith("/payload-too-large")

        # streamed without Content-Length: refused once the limit is passed, the rest unread
        sent = 0

        async def chunks() -> AsyncIterator[bytes]:
            nonlocal sent
            for _ in range(1000):
                sent += 1
                yield b"y" * 1024

        r = await c.post(IMPORT, content=chunks(), headers={**admin, **CSV})
        assert r.status_code == 413
        assert r.json()["type"].endswith("/payload-too-large")
        assert sent < 10  # 4 KiB limit: the server stopped reading after ~5 chunks
        # a body under the limit is still accepted by this instance
        ok = to_csv(rows(3)).encode()
        assert len(ok) < 4096
        r = await c.post(IMPORT, content=ok, headers={**admin, **CSV})
        assert r.status_code == 200, r.text
    assert await count(sessionmaker, "enterprise") == 3


async def test_default_limit_is_50_mib_and_refuses_declared_larger(
    client: httpx.AsyncClient, admin: dict[str, str], settings: Settings
) -> None:
    assert settings.max_upload_bytes == 50 * 1024 * 1024
    sent = 0

    async def big() -> AsyncIterator[bytes]:
        nonlocal sent
        chunk = b"z" * (1024 * 1024)
        for _ in range(60):
            sent += 1
            yield chunk

    r = await client.post(IMPORT, content=big(), headers={**admin, **CSV})
    assert r.status_code == 413
    assert sent <= 51
    body = json.dumps({"enterprises": []}).encode()
    r = await client.post(
        IMPORT,
        content=body,
        headers={**admin, "Content-Type": "application/json", "Content-Length": str(51 << 20)},
    )
    assert r.status_code == 413
