"""Where the bundled migrations and configuration live, installed or in a checkout."""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PKG = Path(__file__).resolve().parent
_REPO = _PKG.parent.parent


@cache
def _pick(installed: str, checkout: str) -> Path:
    """Prefer the checkout's directory (editable installs), else the copy inside the wheel.

    Looked up once per process (a stat per call was 6 % of a read that consults the policy)."""
    repo_path = _REPO / checkout
    if repo_path.is_dir():
        return repo_path
    return _PKG / installed


def migrations_dir() -> Path:
    """The Alembic script directory."""
    return _pick("_migrations", "migrations")


def config_dir() -> Path:
    """The directory holding default.toml, policy.toml and friends."""
    return _pick("_config", "config")
