"""The `inspection-hub` command against the test database (subprocesses, as a user runs it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from tests.conftest import TEST_PEPPER

SRC = str(Path(__file__).resolve().parents[2] / "src")


def cli_env(database_url: str, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSPECTION_HUB_")}
    env.update(
        INSPECTION_HUB_DATABASE_URL=database_url,
        INSPECTION_HUB_DATA_DIR=str(data_dir),
        INSPECTION_HUB_TOKEN_PEPPER=TEST_PEPPER,
        INSPECTION_HUB_SESSION_SECRET="test-session-secret-" + "y" * 40,
        PYTHONPATH=SRC + os.pathsep + env.get("PYTHONPATH", ""),
    )
    return env


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "inspection_hub.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_token_create_prints_only_a_working_token(
    database_url: str,
    tmp_path: Path,
    client: httpx.AsyncClient,
    two_agencies: tuple[str, str],
    sessionmaker: Any,
) -> None:
    env = cli_env(database_url, tmp_path)
    done = run_cli(
        env, "token", "create", "--role", "scheduler", "--agency", "SCJG", "--name", "li"
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1
    assert done.stdout.endswith("\n")
    token = lines[0]
    assert token.startswith("ih_")
    assert len(token) > 30
    r = await client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    assert r.json() == {
        "username": "li",
        "display_name": "li",
        "role": "scheduler",
        "agency": "SCJG",
    }
    async with sessionmaker() as s:
        stored = (
            await s.execute(
                text(
                    "SELECT token_hash, prefix FROM api_token t JOIN user_account u "
                    "ON u.id = t.user_id WHERE u.username = 'li'"
                )
            )
        ).all()
        whole = (await s.execute(text("SELECT string_agg(t::text, '|') FROM api_token t"))).scalar()
        audited = (
            await s.execute(text("SELECT count(*) FROM audit_log WHERE action = 'token.create'"))
        ).scalar_one()
    assert len(stored) == 1
    assert token not in whole
    assert token[3:] not in whole
    assert token not in stored[0].token_hash
    assert stored[0].token_hash != token
    assert len(stored[0].token_hash) == 64
    assert token.startswith(stored[0].prefix)
    assert audited == 1
    # a second token for the same person works too; a token for another role under the
    # same name is refused
    again = run_cli(
        env, "token", "create", "--role", "scheduler", "--agency", "SCJG", "--name", "li"
    )
    assert again.returncode == 0
    assert again.stdout.strip() != token
    clash = run_cli(env, "token", "create", "--role", "admin", "--name", "li")
    assert clash.returncode != 0
    assert clash.stdout == ""
    assert "already exists" in clash.stderr


async def test_token_list_and_revoke(
    app: Any,
    database_url: str,
    tmp_path: Path,
    client: httpx.AsyncClient,
    two_agencies: tuple[str, str],
    sessionmaker: Any,
) -> None:
    env = cli_env(database_url, tmp_path)
    made = [
        run_cli(env, "token", "create", "--role", "approver", "--agency", "SCJG", "--name", "li")
        for _ in range(2)
    ]
    assert [m.returncode for m in made] == [0, 0]
    first, second = (m.stdout.strip() for m in made)
    first_id = int(made[0].stderr.split("token ", 1)[1].split()[0])
    assert f"inspection-hub token revoke {first_id}" in made[0].stderr
    assert first not in made[0].stderr
    headers = {"Authorization": f"Bearer {first}"}
    assert (await client.get("/v1/me", headers=headers)).status_code == 200  # cached in the app

    revoked = run_cli(env, "token", "revoke", str(first_id))
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout.startswith(f"revoked token {first_id} of li at ")
    assert "token_cache_seconds" in revoked.stderr
    # another process revoked it: the serving process keeps its cached entry for the TTL...
    assert (await client.get("/v1/me", headers=headers)).status_code == 200
    # ...and refuses the token once the entry has expired
    cache = app.state.token_cache
    original = cache.clock
    try:
        cache.clock = lambda: original() + cache.ttl + 1
        refused = await client.get("/v1/me", headers=headers)
    finally:
        cache.clock = original
    assert refused.status_code == 401
    assert (
        await client.get("/v1/me", headers={"Authorization": f"Bearer {second}"})
    ).status_code == 200

    again = run_cli(env, "token", "revoke", str(first_id))
    assert again.returncode == 0
    assert f"token {first_id} of li was already revoked at " in again.stdout
    assert revoked.stdout.split(" at ")[1] == again.stdout.split(" at ")[1]
    missing = run_cli(env, "token", "revoke", "999999")
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr

    listed = run_cli(env, "token", "list", "--name", "li")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0] == "id\tuser\tcreated_at\trevoked_at"
    rows = [line.split("\t") for line in lines[1:]]
    assert [(int(r[0]), r[1], r[3] == "-") for r in rows] == [
        (first_id + 1, "li", True),
        (first_id, "li", False),
    ]
    everyone = run_cli(env, "token", "list")
    assert {line.split("\t")[1] for line in everyone.stdout.splitlines()[1:]} >= {"li"}
    async with sessionmaker() as s:
        hashes = list((await s.execute(text("SELECT token_hash FROM api_token"))).scalars())
        audited = (
            await s.execute(
                text("SELECT actor_name, object_id FROM audit_log WHERE action = 'token.revoke'")
            )
        ).all()
    for secret in (first, second, *hashes):
        assert secret not in listed.stdout + everyone.stdout
    assert [tuple(a) for a in audited] == [("system", str(first_id))]


async def test_token_create_refuses_bad_input(
    database_url: str, tmp_path: Path, two_agencies: tuple[str, str], sessionmaker: Any
) -> None:
    env = cli_env(database_url, tmp_path)
    done = run_cli(env, "token", "create", "--role", "boss", "--name", "x")
    assert done.returncode != 0
    assert done.stdout == ""
    assert "unknown role 'boss'" in done.stderr
    assert "scheduler" in done.stderr
    done = run_cli(env, "token", "create", "--role", "scheduler", "--name", "x")
    assert done.returncode != 0
    assert done.stdout == ""
    assert "needs an agency" in done.stderr
    done = run_cli(env, "token", "create", "--role", "approver", "--agency", "NOPE", "--name", "y")
    assert done.returncode != 0
    assert "NOPE" in done.stderr
    async with sessionmaker() as s:
        users = await s.execute(
            text("SELECT username FROM user_account WHERE username IN ('x','y')")
        )
        assert users.all() == []


async def test_audit_verify_exit_codes(
    database_url: str,
    tmp_path: Path,
    client: httpx.AsyncClient,
    two_agencies: tuple[str, str],
    sessionmaker: Any,
) -> None:
    env = cli_env(database_url, tmp_path)
    ok = run_cli(env, "audit", "verify")
    assert ok.returncode == 0, ok.stderr
    assert "OK: 4 rows" in ok.stdout
    async with sessionmaker() as s, s.begin():
        await s.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update"))
        await s.execute(text("UPDATE audit_log SET object_id = 'X' WHERE id = 2"))
        await s.execute(text("ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update"))
    broken = run_cli(env, "audit", "verify")
    assert broken.returncode == 1
    assert "BROKEN at row 2" in broken.stdout
