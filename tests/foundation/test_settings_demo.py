"""Settings and secrets; the demo district."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from stdnum.cn import uscc as stdnum_uscc

from inspection_hub.audit.service import verify_chain
from inspection_hub.config import Settings
from inspection_hub.demo import load_demo


@pytest.mark.parametrize("secret", ["changeme", "", "secret", "short-but-real"])
def test_production_refuses_placeholder_secrets(secret: str, tmp_path: Path) -> None:
    s = Settings(env="production", token_pepper=secret, session_secret="z" * 48, data_dir=tmp_path)
    with pytest.raises(RuntimeError, match="INSPECTION_HUB_TOKEN_PEPPER"):
        s.ensure_secrets()
    assert not (tmp_path / "secrets").exists()


def test_production_accepts_real_secrets(tmp_path: Path) -> None:
    s = Settings(
        env="production", token_pepper="a" * 40, session_secret="b" * 40, data_dir=tmp_path
    )
    s.ensure_secrets()
    assert s.token_pepper == "a" * 40


def test_secrets_generated_0600_and_reused(tmp_path: Path) -> None:
    first = Settings(env="development", data_dir=tmp_path)
    first.ensure_secrets()
    path = tmp_path / "secrets" / "token_pepper"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first.token_pepper) >= 32
    assert len(first.session_secret) >= 32
    assert first.token_pepper != first.session_secret
    second = Settings(env="development", data_dir=tmp_path)
    second.ensure_secrets()
    assert (second.token_pepper, second.session_secret) == (
        first.token_pepper,
        first.session_secret,
    )


def test_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().max_upload_bytes == 50 * 1024 * 1024  # from config/default.toml
    monkeypatch.setenv("INSPECTION_HUB_MAX_UPLOAD_BYTES", "1234")
    monkeypatch.setenv("INSPECTION_HUB_PORT", "9001")
    s = Settings()
    assert (s.max_upload_bytes, s.port) == (1234, 9001)


async def test_demo_district(sessionmaker: Any) -> None:
    async with sessionmaker() as session, session.begin():
        summary = await load_demo(session)
    assert summary == {"agencies": 6, "inspectors": 30, "enterprises": 2000}
    async with sessionmaker() as s:
        counts = {
            t: (await s.execute(text(f"SELECT count(*) FROM {t}"))).scalar_one()
            for t in ("agency", "inspector", "enterprise", "enterprise_risk_class")
        }
        matters = dict(
            (await s.execute(text("SELECT agency_code, count(*) FROM matter GROUP BY 1"))).all()
        )
        codes = (await s.execute(text("SELECT uscc FROM enterprise"))).scalars().all()
        lapsed = (
            await s.execute(
                text("SELECT count(*) FROM inspector WHERE certificate_valid_until < current_date")
            )
        ).scalar_one()
        report = await verify_chain(s)
    assert counts == {
        "agency": 6,
        "inspector": 30,
        "enterprise": 2000,
        "enterprise_risk_class": 2000,
    }
    assert len(matters) == 6
    assert all(n >= 2 for n in matters.values())
    assert all(stdnum_uscc.is_valid(c) for c in codes)
    assert lapsed == 6  # one per agency, so rosters show the difference
    assert report.ok
    # loading again does nothing
    async with sessionmaker() as session, session.begin():
        assert "skipped" in await load_demo(session)
