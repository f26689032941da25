"""Settings from the environment. Read only at the composition roots (app factory, CLI)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_JWT_SECRET = "dev-only-insecure-jwt-secret-change-me-0123456789"  # noqa: S105
DEV_DASHBOARD_PASSWORD = "dompet-dev"  # noqa: S105


class Settings(BaseSettings):
    """Every knob Dompet has; see the configuration table in README.md."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    env: Literal["development", "production", "test"] = Field(
        default="development", validation_alias="DOMPET_ENV"
    )
    database_url: str = "sqlite:///./data/dompet.db"
    host: str = "127.0.0.1"
    port: int = 8000
    display_timezone: str = "Asia/Jakarta"

    jwt_secret: SecretStr = SecretStr(DEV_JWT_SECRET)
    access_token_ttl_seconds: int = 15 * 60
    refresh_token_ttl_seconds: int = 7 * 24 * 3600
    pin_pepper: SecretStr | None = None
    pin_hash_time_cost: int = 3
    pin_hash_memory_kib: int = 65536
    pin_hash_parallelism: int = 4

    login_max_failures: int = 5
    login_lock_seconds: int = 300

    idempotency_ttl_seconds: int = 24 * 3600
    idempotency_in_flight_seconds: int = 60
    max_body_bytes: int = 16 * 1024

    worker_enabled: bool = Field(default=True, validation_alias="DOMPET_WORKER")
    worker_sweep_seconds: float = 1.0
    worker_lease_seconds: float = 30.0
    worker_batch: int = 100
    settle_max_attempts: int = 5
    settle_retry_base_seconds: float = 1.0
    settle_retry_max_seconds: float = 300.0
    redis_url: str | None = None

    dashboard_user: str = "operator"
    dashboard_password: SecretStr = SecretStr(DEV_DASHBOARD_PASSWORD)

    log_level: str = "INFO"
    log_json: bool = True

    # -- MongoDB engine (issue 5) --
    mongodb_allow_standalone: bool = False
    """Accept a MongoDB server that is not a replica set (test-only: the nx-27017 server)."""

    @model_validator(mode="after")
    def _refuse_dev_secrets_in_production(self) -> Settings:
        if self.env == "production":
            if self.jwt_secret.get_secret_value() == DEV_JWT_SECRET:
                raise ValueError("JWT_SECRET must be set in production")
            if len(self.jwt_secret.get_secret_value()) < 32:
                raise ValueError("JWT_SECRET must be at least 32 characters in production")
            if self.dashboard_password.get_secret_value() == DEV_DASHBOARD_PASSWORD:
                raise ValueError("DASHBOARD_PASSWORD must be set in production")
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.display_timezone)

    @property
    def access_token_ttl(self) -> timedelta:
        return timedelta(seconds=self.access_token_ttl_seconds)

    @property
    def refresh_token_ttl(self) -> timedelta:
        return timedelta(seconds=self.refresh_token_ttl_seconds)

    # -- background workers, SAQ and the operator dashboard (issue 4) -------------------------
    worker_heartbeat_seconds: float = 5.0
    """How often a worker records its heartbeat; the dashboard calls it stale after 3x this."""
    worker_queue: Literal["auto", "db", "saq"] = "auto"
    """`dompet worker`'s dispatch: db polling, SAQ on REDIS_URL, or auto (saq iff REDIS_URL)."""
    worker_concurrency: int = Field(default=1, ge=1, le=64)
    saq_sweep_seconds: float = 10.0
    """How often the SAQ sweep looks for PENDING transfers that waited too long."""
    saq_sweep_after_seconds: float = 30.0
    """A due PENDING transfer older than this is re-enqueued by the sweep."""
    saq_queue_name: str = "dompet-settlement"
    dashboard_session_secret: SecretStr | None = None
    """HMAC key of the dashboard session cookie (default: derived from JWT_SECRET)."""
    dashboard_session_seconds: int = 8 * 3600
    dashboard_secure_cookie: bool = False
    """Mark the dashboard cookie Secure (set true behind HTTPS)."""
    dashboard_refresh_seconds: float = 3.0

    # -- reliability and security (issue 6) ------------------------------------------------
    @model_validator(mode="before")
    @classmethod
    def _accept_field_names(cls, data: Any) -> Any:
        """``Settings(env="test", worker_enabled=False)`` means what it says.

        Fields read from a differently named variable (``DOMPET_ENV``, ``DOMPET_WORKER``) would
        otherwise silently ignore their own field name given in code.
        """
        if not isinstance(data, dict):
            return data
        renamed = dict(data)
        for name, info in cls.model_fields.items():
            alias = info.validation_alias
            if isinstance(alias, str) and alias != name and name in renamed:
                renamed[alias] = renamed.pop(name)
        return renamed

    # -- idempotency-key purge -----------------------------------------------------------------
    idempotency_purge_seconds: float = Field(default=3600.0, gt=0)
    """How often (at most) the background workers delete expired idempotency keys."""

    # -- faults below the service (issue 22) ---------------------------------------------------
    db_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    """Longest wait to open a database connection (PostgreSQL; MongoDB's server selection)."""
    db_statement_timeout_seconds: float = Field(default=10.0, ge=0)
    """Longest a statement may run, server side and client side (PostgreSQL); 0: no limit."""
    db_wait_timeout_seconds: float = Field(default=5.0, gt=0)
    """Longest a request waits for a free database connection (PostgreSQL) before a 503."""
    db_max_waiting: int = Field(default=256, ge=0)
    """Requests of one process that may wait for a database connection at once (PostgreSQL);
    one more gets a 503 at once instead of joining an unbounded queue."""
    db_retry_after_seconds: int = Field(default=1, ge=0)
    """The Retry-After of a 503 answered because the database is unavailable."""
    redis_timeout_seconds: float = Field(default=1.0, gt=0)
    """Longest the API waits for Redis when it enqueues a settlement (the transfer is already
    committed: past it, the SAQ sweep enqueues it); also Redis's connect timeout."""
