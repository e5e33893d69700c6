"""Enterprise reads, filters, cursor pagination, updates with If-Match and risk history."""

from __future__ import annotations

from typing import Any

import httpx

from inspection_hub.kit.synth import enterprises
from inspection_hub.kit.timeutil import local_today
from tests.foundation.test_enterprise_import import post_csv, to_csv


async def seed(client: httpx.AsyncClient, admin: dict[str, str], n: int) -> list[dict[str, Any]]:
    data = list(enterprises(n, seed=21))
    r = await post_csv(client, admin, to_csv(data))
    assert r.status_code == 200, r.text
    return data


async def walk(
    client: httpx.AsyncClient, headers: dict[str, str], params: dict[str, Any]
) -> tuple[list[str], int]:
    seen: list[str] = []
    pages = 0
    cursor: str | None = None
    while True:
        q = dict(params)
        if cursor:
            q["cursor"] = cursor
        r = await client.get("/v1/enterprises", params=q, headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        pages += 1
        seen.extend(e["uscc"] for e in body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return seen, pages


async def test_pagination_walks_all_without_duplicates(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    data = await seed(client, admin, 57)
    seen, pages = await walk(client, admin, {"limit": 10})
    assert pages == 6
    assert len(seen) == len(set(seen)) == 57
    assert seen == sorted(e["uscc"] for e in data)
    seen, pages = await walk(client, admin, {"limit": 57})
    assert (len(seen), pages) == (57, 1)


async def test_filters(client: httpx.AsyncClient, admin: dict[str, str], make_headers: Any) -> None:
    data = await seed(client, admin, 80)
    supervisor = await make_headers("supervisor")
    district = data[0]["district_code"]
    seen, _ = await walk(client, supervisor, {"district": district, "limit": 7})
    assert sorted(seen) == sorted(e["uscc"] for e in data if e["district_code"] == district)
    seen, _ = await walk(client, admin, {"industry": "f52", "limit": 7})
    expected = sorted(e["uscc"] for e in data if e["industry_code"].startswith("F52"))
    assert expected
    assert sorted(seen) == expected
    seen, _ = await walk(client, admin, {"risk_class": "D", "district": district})
    assert sorted(seen) == sorted(
        e["uscc"] for e in data if e["risk_class"] == "D" and e["district_code"] == district
    )
    r = await client.get("/v1/enterprises", params={"risk_class": "Z"}, headers=admin)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "risk_class"
    r = await client.get("/v1/enterprises", params={"cursor": "!!not-a-cursor"}, headers=admin)
    assert r.status_code == 422


async def test_patch_keeps_risk_history_and_if_match(
    client: httpx.AsyncClient, admin: dict[str, str], sessionmaker: Any
) -> None:
    data = await seed(client, admin, 2)
    uscc = data[0]["uscc"]
    before = (await client.get(f"/v1/enterprises/{uscc}", headers=admin)).json()
    assert before["version"] == 1
    old_class = before["risk_class"]
    new_class = "A" if old_class != "A" else "C"
    history = (await client.get(f"/v1/enterprises/{uscc}/risk-classes", headers=admin)).json()
    assert history == [{"valid_from": str(data[0]["established_on"]), "risk_class": old_class}]

    r = await client.patch(
        f"/v1/enterprises/{uscc}",
        json={"risk_class": new_class},
        headers={**admin, "If-Match": '"1"'},
    )
    assert r.status_code == 200, r.text
    assert r.json()["risk_class"] == new_class
    assert r.json()["version"] == 2
    history = (await client.get(f"/v1/enterprises/{uscc}/risk-classes", headers=admin)).json()
    assert history == [
        {"valid_from": str(data[0]["established_on"]), "risk_class": old_class},
        {"valid_from": str(local_today()), "risk_class": new_class},
    ]

    # stale If-Match: 412 and nothing changes
    r = await client.patch(
        f"/v1/enterprises/{uscc}", json={"name": "改名"}, headers={**admin, "If-Match": '"1"'}
    )
    assert r.status_code == 412
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"].endswith("/precondition-failed")
    after = (await client.get(f"/v1/enterprises/{uscc}", headers=admin)).json()
    assert after["name"] == before["name"]
    assert after["version"] == 2

    r = await client.patch(
        f"/v1/enterprises/{uscc}", json={"name": "改名"}, headers={**admin, "If-Match": "abc"}
    )
    assert r.status_code == 422
    r = await client.patch(f"/v1/enterprises/{uscc}", json={"version": 9}, headers=admin)
    assert r.status_code == 422
    assert "version" in [e["field"] for e in r.json()["errors"]]


async def test_reimport_with_new_class_adds_history(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    data = await seed(client, admin, 3)
    first = data[0]
    changed = {**first, "risk_class": "D" if first["risk_class"] != "D" else "A"}
    r = await post_csv(client, admin, to_csv([changed]))
    assert r.json() == {"created": 0, "updated": 1}
    history = (
        await client.get(f"/v1/enterprises/{first['uscc']}/risk-classes", headers=admin)
    ).json()
    assert [h["risk_class"] for h in history] == [first["risk_class"], changed["risk_class"]]


async def test_unknown_and_invalid_enterprise_are_404(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    from inspection_hub.kit.synth import make_uscc

    r = await client.get(f"/v1/enterprises/{make_uscc('320404', 99)}", headers=admin)
    assert r.status_code == 404
    r = await client.get("/v1/enterprises/not-a-code", headers=admin)
    assert r.status_code == 404
