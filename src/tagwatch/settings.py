"""Settings from `TAGWATCH_*` environment variables, built by the app factory and CLI."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

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
    keepalive_requests: int = Field(
        16, description="responses a kept-alive connection carries before it is closed; 0: no end"
    )
    # access: sign-in, sessions, identity provider, pseudonyms
    session_max_age_seconds: int = Field(8 * 3600, description="signed-in session lifetime")
    lockout_threshold: int = Field(5, description="failed sign-ins in a row that lock")
    lockout_minutes: int = Field(15, description="how long a locked account stays locked")
    oidc_discovery_url: str = Field("", description="identity provider's discovery document")
    oidc_client_id: str = ""
    oidc_client_secret: str = ""
    oidc_groups_claim: str = Field("groups", description="id_token claim listing groups")
    oidc_group_roles: dict[str, list[str]] = Field(
        default_factory=dict, description='JSON: {"idp-group": ["role", ...]}'
    )
    pseudonym_key: str = Field(
        "dev-only-pseudonym-key", description="keys analysts' pseudonyms; rotate to unlink"
    )
    # alerts: enforcement deadlines and notification channels
    outcome_deadline_hours: float = Field(
        24, description="an alert needs an enforcement outcome within this"
    )
    notification_max_attempts: int = Field(
        6, description="delivery attempts before a notification is marked failed"
    )
    notify_api_key: str = Field("", description="GOV.UK Notify API key (notifier 'notify')")
    notify_template_id: str = Field("", description="Notify email template: ((subject)) ((body))")
    notify_base_url: str = "https://api.notifications.service.gov.uk"
    smtp_host: str = Field("", description="mail server for the notifier 'smtp'")
    smtp_port: int = 25
    smtp_sender: str = Field("", description="From address of alert emails")
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    webhook_url: str = Field("", description="receiver of signed alert POSTs (notifier 'webhook')")
    webhook_secret: str = Field("", description="HMAC-SHA256 key for the webhook signature")
    # telemetry: the MQTT device channel
    mqtt_url: str = Field("mqtt://127.0.0.1:1883", description="broker for `tagwatch ingest-mqtt`")

    # requests: location data requests
    data_request_max_days: float = Field(7, description="longest period one data request may cover")
    data_request_access_days: float = Field(
        28, description="approved data request files stay available this long after approval"
    )

    # analytics: the daily pseudonymised Parquet export
    analytics_daily_export: bool = Field(
        True, description="write yesterday's Parquet export by the clock (docs/analytics.md)"
    )

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.var_dir / 'tagwatch.db').as_posix()}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")


def settings_of(session: Session) -> Settings:
    """The settings the session's factory was made with, else those of the environment."""
    found = session.info.get("settings")
    return found if isinstance(found, Settings) else Settings()
