"""Settings from the environment (pure logic)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.settings import Settings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("DATABASE_URL", "DB_HOST", "DB_PORT", "SERVER_PORT", "DB_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    s = Settings()
    assert (s.server_host, s.server_port) == ("127.0.0.1", 3000)
    assert s.conninfo == "postgresql://postgres@127.0.0.1:5432/coupons?sslmode=prefer"
    assert s.db_pool_acquire_timeout < s.request_deadline


def test_parts_are_quoted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("DB_USER", "a@b")
    monkeypatch.setenv("DB_PASSWORD", "p:w/d")
    monkeypatch.setenv("DB_SSL_MODE", "disable")
    assert Settings().conninfo.startswith("postgresql://a%40b:p%3Aw%2Fd@")


def test_database_url_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://x@h:1/d")
    assert Settings().conninfo == "postgresql://x@h:1/d"


def test_session_options_carry_the_statement_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_STATEMENT_TIMEOUT", "0.25")
    assert "-c statement_timeout=250 " in Settings().session_options


def test_the_pgbouncer_router_sets_the_session_settings_the_service_would() -> None:
    # chaos does not import the service: its copy of the session settings is checked here.
    from chaos.infra.ha_stack import HA_SERVICE_SETTINGS
    from chaos.infra.routers import pooler_query_wait_timeout, pooler_session_settings

    for env in ({}, dict(HA_SERVICE_SETTINGS), {"DB_STATEMENT_TIMEOUT": "0.25"}):
        settings = Settings(**{k.lower(): v for k, v in env.items()})  # type: ignore[arg-type]
        assert pooler_session_settings(env) == settings.session_settings, env
        assert pooler_query_wait_timeout(env) == settings.db_pool_acquire_timeout, env


def test_behind_a_transaction_pooler_nothing_is_prepared_nor_sent_at_connect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.db import Database

    monkeypatch.setenv("DB_TRANSACTION_POOLER", "true")
    kwargs = Database(Settings())._connect_kwargs()
    assert kwargs["prepare_threshold"] is None
    assert "options" not in kwargs
    monkeypatch.setenv("DB_TRANSACTION_POOLER", "false")
    kwargs = Database(Settings())._connect_kwargs()
    assert "prepare_threshold" not in kwargs
    assert "statement_timeout=" in kwargs["options"]


def test_min_above_max_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_POOL_MIN_SIZE", "5")
    monkeypatch.setenv("DB_POOL_MAX_SIZE", "2")
    with pytest.raises(ValidationError, match="exceeds"):
        Settings()


@pytest.mark.parametrize(
    ("env", "names"),
    [
        (
            {"DB_POOL_ACQUIRE_TIMEOUT": "3", "REQUEST_DEADLINE": "3"},
            ["DB_POOL_ACQUIRE_TIMEOUT (3)", "REQUEST_DEADLINE (3)"],
        ),
        (
            {"DB_STATEMENT_TIMEOUT": "4.5", "REQUEST_DEADLINE": "4"},
            ["DB_STATEMENT_TIMEOUT (4.5)", "REQUEST_DEADLINE (4)"],
        ),
        (
            {"DB_POOL_MIN_SIZE": "9", "DB_POOL_MAX_SIZE": "3"},
            ["DB_POOL_MIN_SIZE (9)", "DB_POOL_MAX_SIZE (3)"],
        ),
    ],
)
def test_contradictions_are_refused_naming_variables_and_values(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], names: list[str]
) -> None:
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    with pytest.raises(ValidationError) as info:
        Settings()
    for name in names:
        assert name in str(info.value)


def test_the_waiting_cap_is_only_a_memory_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DB_POOL_MAX_WAITING", raising=False)
    assert Settings().db_pool_max_waiting >= 10_000


def test_the_coupon_target_names_every_setting_the_service_reads() -> None:
    # The toolkit does not import the service (it is not in the wheel); its target lists
    # the environment variables a stack must not inherit. This keeps the list in step.
    from chaos.targets.coupons import SETTINGS_NAMES

    assert {name.upper() for name in Settings.model_fields} == SETTINGS_NAMES
