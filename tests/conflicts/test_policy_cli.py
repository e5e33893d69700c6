"""`inspection-hub policy check FILE`: exit 0 for a valid file, 1 listing the problems."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from inspection_hub.cli import app
from inspection_hub.paths import config_dir


def test_policy_check_accepts_the_bundled_policy() -> None:
    result = CliRunner().invoke(app, ["policy", "check", str(config_dir() / "policy.toml")])
    assert result.exit_code == 0, result.output
    assert "2026.1" in result.output


def test_policy_check_rejects_a_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "policy.toml"
    bad.write_text(
        '[[versions]]\nversion = "x"\neffective_from = 2020-01-01\n[versions.caps]\nA = 1\n'
    )
    result = CliRunner().invoke(app, ["policy", "check", str(bad)])
    assert result.exit_code == 1
    assert "missing risk class B, C, D" in result.output
