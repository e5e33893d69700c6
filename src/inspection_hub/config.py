"""The one Settings object: defaults from config/default.toml, overridden by INSPECTION_HUB_*."""

from __future__ import annotations

import os
import secrets
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from inspection_hub.paths import config_dir

PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "secret", "placeholder", "dev"}


class _TomlDefaults(PydanticBaseSettingsSource):
    """Reads config/default.toml as the lowest-priority source."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = config_dir() / "default.toml"
        if not path.exists():
            return {}
        with path.open("rb") as fh:
            return dict(tomllib.load(fh))


class Settings(BaseSettings):
    """Service settings; see config/default.toml for every key and its meaning."""

    model_config = SettingsConfigDict(env_prefix="INSPECTION_HUB_", extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path(".inspection-hub")
    database_url: str = ""
    db_pool_size: int = 10
    db_max_overflow: int = 0
    db_pool_ping_after_idle_s: float = 1.0
    db_statement_pool_size: int = 6
    public_base_url: str = "http://127.0.0.1:8000"
    token_pepper: str = Field(default="", repr=False)
    session_secret: str = Field(default="", repr=False)
    max_upload_bytes: int = 50 * 1024 * 1024
    token_cache_seconds: float = 5.0
    log_level: str = "INFO"
    # FastAPI's built-in OpenTelemetry hooks: off unless asked for (the service exports its own
    # Prometheus /metrics); when on, they look up the tracer provider on every request.
    opentelemetry: bool = False
    policy_file: str = ""
    workers_enabled: bool = True
    scheduler_enabled: bool = True
    # Full garbage collections skip what a started process holds for its whole life (D32).
    gc_freeze_after_startup: bool = True
    allow_private_callback_urls: bool = False
    webhook_timeout_seconds: float = 15.0
    public_rate_limit_per_second: float = 20.0
    public_rate_limit_burst: int = 200
    webhook_retry_schedule_seconds: list[float] = Field(
        default_factory=lambda: [
            5.0,
            30.0,
            120.0,
            600.0,
            1800.0,
            3600.0,
            10800.0,
            21600.0,
            43200.0,
            86400.0,
            86400.0,
        ]
    )
    webhook_retry_jitter: float = 0.2
    webhook_claim_seconds: float = 60.0
    webhook_concurrency: int = 16
    event_poll_seconds: float = 1.0
    event_batch_size: int = 500
    handler_retry_base_seconds: float = 2.0
    handler_retry_max_seconds: float = 3600.0
    shutdown_grace_seconds: float = 20.0
    metrics_allow_remote: bool = False

    # Surveys
    survey_callback_secret: str = Field(default="", repr=False)
    survey_dispatch_batch: int = 1000
    survey_callback_concurrency: int = 16
    web_session_idle_minutes: int = 30
    web_session_absolute_hours: int = 8
    login_max_failures: int = 5
    login_lockout_minutes: int = 15

    # Check requests (approvals): deadlines themselves come from the dated policy.
    idempotency_ttl_hours: int = 24
    idempotency_in_flight_seconds: int = 60
    check_request_sweep_batch: int = 500

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlDefaults(settings_cls))

    @property
    def uses_embedded_db(self) -> bool:
        """True when no external database is configured."""
        return not self.database_url

    def policy_path(self) -> Path:
        """The policy file in force."""
        return _policy_path(self.policy_file)

    def ensure_secrets(self) -> None:
        """Generate missing secrets into the data directory; refuse placeholders in production."""
        for name in ("token_pepper", "session_secret"):
            value: str = getattr(self, name)
            if self.env == "production":
                if value.strip().lower() in PLACEHOLDER_SECRETS or len(value) < 32:
                    raise RuntimeError(
                        f"INSPECTION_HUB_{name.upper()} must be set to a real secret "
                        "(at least 32 characters) when INSPECTION_HUB_ENV=production"
                    )
                continue
            if value:
                continue
            object.__setattr__(self, name, _load_or_create_secret(self.data_dir, name))


def _load_or_create_secret(data_dir: Path, name: str) -> str:
    """Read a generated secret from data_dir/secrets/, creating it (mode 0600) if absent."""
    folder = data_dir / "secrets"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:  # another process won the race: use its secret
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    return value


@lru_cache(maxsize=16)
def _policy_path(policy_file: str) -> Path:
    # One Path per value: joining and printing a fresh one on every pre-check was 2 % of the
    # check-request read's CPU (the policy book is looked up by the path's string).
    return Path(policy_file) if policy_file else config_dir() / "policy.toml"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, secrets resolved."""
    settings = Settings()
    settings.data_dir = settings.data_dir.expanduser().resolve()
    settings.ensure_secrets()
    return settings
