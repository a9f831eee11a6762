"""
Every knob of Broseph jobs, read once from the environment (and `.env`).

Each field here is documented in `.env.example`; `tests/test_settings.py` fails when the two drift.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """
    The one settings object; build it with `get_settings()` in composition roots only.
    """

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_ignore_empty=True)

    # --- database -------------------------------------------------------------------------
    database_url: str | None = Field(
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
    retry_base_seconds: int = Field(default=2, ge=1)

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
    ai_send_message_text: bool = False
    prompt_hour: int = Field(default=8, ge=0, le=23)
    prompt_cron: str = "*/15 * * * *"
    fanout_chunk_size: int = Field(default=1000, ge=1)

    # --- push notifications ---------------------------------------------------------------
    firebase_credentials_file: str | None = None
    firebase_project_id: str | None = None
    push_dry_run: bool = False
    new_message_stale_after_minutes: int = Field(default=120, ge=1)
    reminder_hour: int = Field(default=20, ge=0, le=23)
    reminder_cron: str = "*/15 * * * *"

    # --- BullMQ ingress -------------------------------------------------------------------
    redis_url: str = "redis://127.0.0.1:6379"
    ingress_queues: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["broseph-jobs"])
    ingress_concurrency: int = Field(default=10, ge=1)
    ingress_max_payload_bytes: int = Field(default=16384, ge=256)

    # --- operations -----------------------------------------------------------------------
    rescue_after_seconds: float = Field(default=30.0, gt=0)
    retention_days: int = Field(default=14, ge=1)
    prune_batch_size: int = Field(default=5000, ge=1)
    metrics_port: int | None = None

    @field_validator("worker_queues", "ingress_queues", mode="before")
    @classmethod
    def _split_csv(cls, value: object) -> object:
        # Environment variables are flat strings: "a,b" is the documented list form.
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """
    The process-wide settings, read once.
    """
    return Settings()
