"""Where the bundled migrations and configuration live, installed or in a checkout."""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent
_REPO = _PKG.parent.parent


def _pick(installed: str, checkout: str) -> Path:
    """Prefer the checkout's directory (editable installs), else the copy inside the wheel."""
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
