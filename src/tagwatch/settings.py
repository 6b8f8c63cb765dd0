"""Settings from `TAGWATCH_*` environment variables, built by the app factory and CLI."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_VAR_DIR = Path("var")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TAGWATCH_", extra="ignore")

    environment: str = Field("development", description="development, test or production")
    var_dir: Path = Field(
        DEFAULT_VAR_DIR, description="where the embedded database and exports live"
    )
    database_url: str = Field("", description="SQLAlchemy URL; empty means SQLite in var_dir")
    secret_key: str = Field(
        "dev-only-secret-change-me", description="signs sessions and CSRF tokens"
    )
    tile_url: str = Field("", description="map tile URL template; empty draws maps without tiles")
    tile_attribution: str = ""
    notifiers: str = Field("outbox", description="comma-separated: outbox, notify, smtp, webhook")
    escalation_minutes: int = Field(30, description="unacknowledged alerts escalate after this")
    clock_skew_seconds: int = Field(
        300, description="future timestamps beyond this are implausible"
    )
    max_speed_mps: float = Field(70.0, description="fix-to-fix speeds above this are implausible")
    log_json: bool = True
    run_periodic_tasks: bool = Field(True, description="run clock-driven tasks in the server")

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.var_dir / 'tagwatch.db').as_posix()}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")
