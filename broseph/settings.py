"""
Every knob of Broseph jobs, read once from the environment (and `.env`).

Each field here is documented in `.env.example`; `tests/test_settings.py` fails when the two drift.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """
    The one settings object; build it with `get_settings()` in composition roots only.
    """

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_ignore_empty=True)

    # --- database -------------------------------------------------------------------------
    # Secret (it carries the password): read it through `db.database_url(settings)`; its repr,
    # and so any traceback or log showing a Settings object, prints '**********'.
    database_url: SecretStr | None = Field(
        default=None,
        description="Postgres URL. Unset: `broseph demo` starts an embedded Postgres.",
    )
    db_pool_max_size: int = Field(default=10, ge=1)
    # Supavisor transaction mode (:6543) and PgBouncer have no LISTEN and no prepared statements.
    listen_notify: bool = True
    prepared_statements: bool = True

    # --- worker ---------------------------------------------------------------------------
    worker_concurrency: int = Field(default=10, ge=1)
    worker_queues: Annotated[list[str], NoDecode] = Field(default_factory=list)
    poll_interval: float = Field(default=5.0, gt=0)
    shutdown_timeout: float = Field(default=30.0, ge=0)
    heartbeat_interval: float = Field(default=5.0, gt=0)

    # --- logging --------------------------------------------------------------------------
    log_format: Literal["json", "console"] = "console"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # --- engagement -----------------------------------------------------------------------
    engagement_cron: str = "5 * * * *"

    # --- AI prompts -----------------------------------------------------------------------
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    openai_model: str = "gpt-4o-mini"
    openai_timeout: float = Field(default=20.0, gt=0)
    openai_max_retries: int = Field(default=2, ge=0)
    # Shared rate budgets (broseph/budgets.py), per minute for all workers; None = no limit.
    # Whole numbers (so "inf" and "nan" are refused with the rest), at most what any account has.
    openai_rpm: int | None = Field(default=None, ge=1, le=100_000_000)
    openai_tpm: int | None = Field(default=None, ge=1, le=100_000_000_000)
    ai_send_message_text: bool = False
    prompt_hour: int = Field(default=8, ge=0, le=23)
    prompt_cron: str = "*/15 * * * *"
    # Minutes before the prompt hour from which prompts are generated ahead, stored unpublished
    # and published at the hour (0 = generated at the hour); at most 12 hours, so a day's prompt
    # is never asked for before the previous day's hour.
    prompt_lead_minutes: int = Field(default=60, ge=0, le=720)
    fanout_chunk_size: int = Field(default=1000, ge=1)

    # --- push notifications ---------------------------------------------------------------
    firebase_credentials_file: str | None = None
    firebase_project_id: str | None = None
    push_dry_run: bool = False
    new_message_stale_after_minutes: int = Field(default=120, ge=1)
    reminder_hour: int = Field(default=20, ge=0, le=23)
    reminder_cron: str = "*/15 * * * *"
    # Where FCM lives (a stand-in server in tests); None = https://fcm.googleapis.com.
    fcm_base_url: str | None = None
    fcm_messages_per_minute: int | None = Field(default=None, ge=1, le=100_000_000)

    # --- BullMQ ingress -------------------------------------------------------------------
    # Secret: redis://:PASSWORD@host carries one. Read it with `reveal(settings.redis_url)`.
    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6379")
    ingress_queues: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["broseph-jobs"])
    # BullMQ jobs held at once per queue, committed to Postgres in batches of up to
    # ingress_batch_size (one statement, one commit each): ceil(concurrency / batch size) batches
    # in flight at once, each on its own database connection.
    ingress_concurrency: int = Field(default=200, ge=1)
    ingress_batch_size: int = Field(default=100, ge=1)
    ingress_max_payload_bytes: int = Field(default=16384, ge=256)
    # BullMQ job name → {"job_type": ..., "fields": {"camelName": "snake_name"}}, merged over the
    # built-in table in broseph/ingress/mapping.py (JSON in the environment).
    ingress_job_map: dict[str, dict[str, Any]] = Field(default_factory=dict)
    ingress_lock_duration_ms: int = Field(default=30000, ge=1000)
    ingress_stalled_interval_ms: int = Field(default=30000, ge=500)

    # --- operations -----------------------------------------------------------------------
    rescue_after_seconds: float = Field(default=30.0, gt=0)
    # procrastinate cron; a sixth field is seconds.
    rescue_cron: str = "* * * * * */15"
    retention_days: int = Field(default=14, ge=1)
    retention_cron: str = "17 * * * *"
    prune_batch_size: int = Field(default=5000, ge=1)
    # /livez, /readyz and /metrics of every long-running process (broseph/ops/probes.py).
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_addr: str = "0.0.0.0"
    metrics_sample_seconds: float = Field(default=15.0, gt=0)
    # How long a worker waits for a lost database before it exits non-zero (for its supervisor).
    db_outage_timeout: float = Field(default=300.0, gt=0)

    # --- error reporting (optional: pip install 'broseph[sentry]'; broseph/error_reports.py) -
    # Secret (it carries the project's key). Unset: nothing is imported or sent.
    sentry_dsn: SecretStr | None = None
    sentry_environment: str | None = None
    # None: broseph@<installed version>.
    sentry_release: str | None = None

    # --- dashboard (optional: pip install 'broseph[dashboard]') ---------------------------
    dashboard_user: str | None = None
    dashboard_password: SecretStr | None = None
    # Seconds between the dashboard's checks for changes (its live pages; LISTEN wakes it
    # sooner when LISTEN_NOTIFY is on).
    dashboard_poll_seconds: float = Field(default=2.0, gt=0)

    @field_validator("worker_queues", "ingress_queues", mode="before")
    @classmethod
    def _split_csv(cls, value: object) -> object:
        # Environment variables are flat strings: "a,b" is the documented list form.
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


def reveal(value: SecretStr | str | None) -> str | None:
    """
    The plain text of a secret setting, for the one place that connects with it. (A str when a
    copy was made with `model_copy(update=…)`, which skips validation.)
    """
    return value.get_secret_value() if isinstance(value, SecretStr) else value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """
    The process-wide settings, read once.
    """
    return Settings()
