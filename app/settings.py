"""Settings of the service, read from environment variables (pydantic-settings).

Every setting is documented in the README with its default. Tests and the chaos
toolkit set short values through these same variables, never by patching code.
Times are float seconds.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import quote

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["APPLICATION_NAME", "Settings"]

APPLICATION_NAME = "coupon-service"
"""The default `application_name` of the service's backends (how tools find them)."""


class Settings(BaseSettings):
    """The service's configuration; one frozen object resolved at start-up."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    # Secrets: SecretStr keeps them out of repr() and of validation errors about the model.
    database_url: SecretStr | None = Field(
        default=None, description="full libpq URL; wins over DB_*"
    )
    db_host: str = "127.0.0.1"
    db_port: int = Field(default=5432, ge=1, le=65535)
    db_user: str = "postgres"
    db_password: SecretStr = SecretStr("")
    db_name: str = "coupons"
    db_ssl_mode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = (
        "prefer"
    )
    db_application_name: str = APPLICATION_NAME
    #: The database address is a transaction-pooling PgBouncer (or alike): psycopg
    #: prepares no statement (a prepared statement lives on one server session, and the
    #: next transaction may run on another), and the session settings are not sent at
    #: connect time (PgBouncer 1.18 refuses the `options` startup parameter); the pooler
    #: sets them on its server sessions (`connect_query`), and the service checks them
    #: at start (`session_settings`).
    db_transaction_pooler: bool = False

    server_host: str = "127.0.0.1"
    server_port: int = Field(default=3000, ge=0, le=65535)

    db_pool_min_size: int = Field(default=4, ge=0)
    db_pool_max_size: int = Field(default=4, ge=1)
    db_pool_acquire_timeout: float = Field(default=1.0, gt=0)
    #: Only a memory guard: admission is by time (app/admission.py). Far above any burst a
    #: pool can drain within the acquire timeout; each waiter costs a few kB.
    db_pool_max_waiting: int = Field(default=10_000, ge=0)
    db_connect_timeout: int = Field(default=2, ge=2)
    db_reconnect_timeout: float = Field(default=1.0, gt=0)
    db_statement_timeout: float = Field(default=2.0, gt=0)
    request_deadline: float = Field(default=3.0, gt=0)
    health_timeout: float = Field(default=1.0, gt=0)
    retry_after: int = Field(default=1, ge=0)
    #: Seconds a claim statement's sold-out answer answers later claims from memory
    #: (app/soldout.py): how long a restock by SQL may go unseen. 0: never from memory.
    sold_out_trust: float = Field(default=5.0, ge=0)
    startup_timeout: float = Field(default=30.0, gt=0)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1)
    # Hostile connections (app/server.py): deadlines from a phase's first byte, sizes in bytes.
    http_head_timeout: float = Field(default=10.0, gt=0)
    http_body_timeout: float = Field(default=10.0, gt=0)
    http_idle_timeout: float = Field(default=10.0, gt=0)
    http_max_header_bytes: int = Field(default=16 * 1024, ge=1024)
    http_max_connections: int = Field(default=16_384, ge=1)
    #: Requests parsed and not yet answered, across all connections; beyond it the server
    #: holds new requests unread (app/backpressure.py). 0: no limit.
    http_max_in_progress: int = Field(default=256, ge=0)
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @model_validator(mode="after")
    def _check_bounds(self) -> Settings:
        # Contradictions are refused at start, naming the variables and their values.
        problems = []
        if self.db_pool_min_size > self.db_pool_max_size:
            problems.append(
                f"DB_POOL_MIN_SIZE ({self.db_pool_min_size}) exceeds "
                f"DB_POOL_MAX_SIZE ({self.db_pool_max_size})"
            )
        if self.db_pool_acquire_timeout >= self.request_deadline:
            problems.append(
                f"DB_POOL_ACQUIRE_TIMEOUT ({self.db_pool_acquire_timeout:g}) must be less than "
                f"REQUEST_DEADLINE ({self.request_deadline:g})"
            )
        if self.db_statement_timeout > self.request_deadline:
            problems.append(
                f"DB_STATEMENT_TIMEOUT ({self.db_statement_timeout:g}) exceeds "
                f"REQUEST_DEADLINE ({self.request_deadline:g})"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def conninfo(self) -> str:
        """The libpq URL the pool connects with."""
        if self.database_url is not None and self.database_url.get_secret_value():
            return self.database_url.get_secret_value()
        auth = quote(self.db_user, safe="")
        password = self.db_password.get_secret_value()
        if password:
            auth += ":" + quote(password, safe="")
        return (
            f"postgresql://{auth}@{self.db_host}:{self.db_port}/{quote(self.db_name, safe='')}"
            f"?sslmode={self.db_ssl_mode}"
        )

    @property
    def session_settings(self) -> dict[str, str]:
        """The server settings every session of the service runs with (milliseconds)."""
        return {
            "statement_timeout": str(max(1, round(self.db_statement_timeout * 1000))),
            # A transaction left open by a vanished client must not hold locks for long.
            "idle_in_transaction_session_timeout": str(
                max(1000, round(self.request_deadline * 2000))
            ),
            "client_connection_check_interval": "1000",
        }

    @property
    def session_options(self) -> str:
        """`session_settings` as libpq `options`, sent at connect time."""
        return " ".join(f"-c {name}={value}" for name, value in self.session_settings.items())
