"""`python -m app` as a process: invalid settings never print secrets; no Server banner."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from app.settings import Settings

#: How long `python -m app` may take to refuse invalid settings (it starts nothing).
EXIT_BOUND = 60.0

PASSWORD = "hunter2-not-for-logs"


def _run_app(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    own = {name.upper() for name in Settings.model_fields}
    base = {k: v for k, v in os.environ.items() if k.upper() not in own}
    return subprocess.run(
        [sys.executable, "-m", "app"],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=EXIT_BOUND,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "named"),
    [
        pytest.param(
            {"DB_PASSWORD": PASSWORD, "DB_POOL_MIN_SIZE": "5"}, "DB_POOL_MIN_SIZE", id="min>max"
        ),
        pytest.param({"DB_PASSWORD": PASSWORD, "DB_PORT": "x"}, "DB_PORT", id="bad-port"),
        pytest.param(
            {"DATABASE_URL": f"postgresql://u:{PASSWORD}@h/d", "HTTP_HEAD_TIMEOUT": "-1"},
            "HTTP_HEAD_TIMEOUT",
            id="url-and-bad-timeout",
        ),
        pytest.param(
            {"DB_PASSWORD": PASSWORD, "LOG_LEVEL": PASSWORD}, "LOG_LEVEL", id="secret-as-value"
        ),
    ],
)
def test_invalid_settings_exit_cleanly_without_secrets(env: dict[str, str], named: str) -> None:
    result = _run_app(env)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert PASSWORD not in output
    assert named in output
    assert "Traceback" not in output
    assert "input_value" not in output
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_settings_repr_hides_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_PASSWORD", PASSWORD)
    monkeypatch.setenv("DATABASE_URL", f"postgresql://u:{PASSWORD}@h/d")
    settings = Settings()
    assert PASSWORD not in repr(settings)
    assert PASSWORD not in str(settings.model_dump())
    assert settings.conninfo == f"postgresql://u:{PASSWORD}@h/d"


def test_no_server_banner(client: httpx.Client) -> None:
    for resp in (client.get("/health"), client.get("/no-such-route"), client.get("/metrics")):
        assert "server" not in resp.headers, resp.headers
        assert "x-request-id" in resp.headers
