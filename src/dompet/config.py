"""Settings from the environment. Read only at the composition roots (app factory, CLI).

No secret has a default: a server without JWT_SECRET / DASHBOARD_SESSION_SECRET generates
random ones and keeps them (dompet/security/kept_secrets.py), except in production, which
refuses to start without them.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_PRODUCTION_SECRET = 32
REMOVED_SETTINGS = ("DASHBOARD_USER", "DASHBOARD_PASSWORD")
"""Dashboard logins from the environment are gone (issue 19): operators are created with
``dompet create-operator``; a server that still gets these refuses to start, saying so."""


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

    jwt_secret: SecretStr | None = None
    """HS256 key of the tokens; unset: generated and kept (not in production)."""
    access_token_ttl_seconds: int = 15 * 60
    refresh_token_ttl_seconds: int = 7 * 24 * 3600
    pin_pepper: SecretStr | None = None
    pin_hash_time_cost: int = 3
    pin_hash_memory_kib: int = 65536
    pin_hash_parallelism: int = 4

    login_max_failures: int = Field(default=5, ge=1)
    login_lock_seconds: int = Field(default=300, ge=1)
    login_failures_per_client: int = Field(default=50, ge=0)
    """Failed logins (wallet and dashboard) per client address per window; 0: no limit."""
    registrations_per_client: int = Field(default=20, ge=0)
    """Registrations per client address per window; 0: no limit."""
    client_limit_window_seconds: int = Field(default=900, ge=1)
    pin_hash_concurrency: int = Field(default=4, ge=1)
    """Argon2 hashes at once per process; one more is a 503 with Retry-After, not a queue."""
    forwarded_allow_ips: str | None = None
    """Proxies whose X-Forwarded-For names the client (uvicorn's list, e.g. ``10.0.0.5``);
    unset: the client address is the socket peer."""

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

    log_level: str = "INFO"
    log_json: bool = True
    prometheus_multiproc_dir: str | None = Field(
        default=None, validation_alias="PROMETHEUS_MULTIPROC_DIR"
    )
    """Set by `dompet serve --workers N` for its workers (a fresh private directory each run):
    /metrics then reports the totals of every worker (prometheus-client's multiprocess mode)."""

    # -- SQL engines (storage/sql/engine.py: SqlSettings) --
    sqlite_synchronous: Literal["FULL", "NORMAL", "EXTRA"] = "FULL"
    """SQLite's ``PRAGMA synchronous``; NORMAL trades the last commits on power loss for speed."""
    sqlite_writer_lock: bool = True
    """SQLite writers of different processes hand over through a lock file (off: A/B runs)."""
    pg_pool_size: int = Field(default=20, ge=1)
    """PostgreSQL connections per process (a fixed pool, no overflow)."""

    @field_validator("sqlite_synchronous", mode="before")
    @classmethod
    def _upper_case(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    # -- MongoDB engine (issue 5) --
    mongodb_allow_standalone: bool = False
    """Accept a MongoDB server that is not a replica set (test-only: the nx-27017 server)."""

    @field_validator("jwt_secret", "dashboard_session_secret", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        """``JWT_SECRET=`` (e.g. from a compose file's ``${JWT_SECRET:-}``) means unset."""
        if isinstance(value, str | SecretStr) and not str(
            value.get_secret_value() if isinstance(value, SecretStr) else value
        ):
            return None
        return value

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        present = {name.upper() for name in os.environ}
        removed = [name for name in REMOVED_SETTINGS if name in present]
        if removed:
            raise ValueError(
                f"{' and '.join(removed)} no longer log into the dashboard: create an operator "
                "with `dompet create-operator NAME` and unset them (see docs/operations.md)"
            )
        if self.env != "production":
            return self
        if self.jwt_secret is None:
            raise ValueError("JWT_SECRET must be set in production")
        for name, secret in (
            ("JWT_SECRET", self.jwt_secret),
            ("DASHBOARD_SESSION_SECRET", self.dashboard_session_secret),
        ):
            if secret is not None and len(secret.get_secret_value()) < MIN_PRODUCTION_SECRET:
                raise ValueError(
                    f"{name} must be at least {MIN_PRODUCTION_SECRET} characters in production"
                )
        if self.dashboard_secure_cookie is False:
            raise ValueError("DASHBOARD_SECURE_COOKIE=false is refused in production (HTTPS)")
        return self

    @property
    def dashboard_cookie_secure(self) -> bool:
        if self.dashboard_secure_cookie is None:
            return self.env == "production"
        return self.dashboard_secure_cookie

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
    """HMAC key of the dashboard session cookie (default: derived from JWT_SECRET, or
    generated and kept with it)."""
    dashboard_session_seconds: int = 8 * 3600
    dashboard_secure_cookie: bool | None = None
    """Mark the dashboard cookie Secure; unset: only in production (where false is refused)."""
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


METRICS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def hand_metrics_dir_to_workers(path: str | None) -> None:
    """Set ``PROMETHEUS_MULTIPROC_DIR`` in this process's environment (None: remove it).

    prometheus-client reads the variable itself, when it is imported: the launcher
    (serving.py) sets it before it spawns the workers of ``dompet serve --workers N``, which
    inherit it, and removes it for one process, whose metrics stay in memory. Besides
    :class:`Settings`, the one place that touches the environment.
    """
    if path is None:
        os.environ.pop(METRICS_DIR_VARIABLE, None)
    else:
        os.environ[METRICS_DIR_VARIABLE] = path
