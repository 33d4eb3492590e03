"""The chaos pytest plugin's gate and options, tested with pytester."""

from __future__ import annotations

import pytest

from chaos.pytest_plugin import SKIP_REASON

pytest_plugins = ["pytester"]

TESTS = """
import pytest

@pytest.mark.chaos
def test_marked():
    pass

def test_uses_the_stack(chaos_stack):
    pass

def test_plain():
    pass
"""


def test_chaos_tests_are_skipped_without_ci(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)
    pytester.makepyfile(TESTS)
    result = pytester.runpytest("-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines([f"*{SKIP_REASON[:40]}*"])


def test_chaos_option_runs_marked_tests(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)
    pytester.makepyfile(TESTS)
    result = pytester.runpytest(
        "--chaos", "-k", "test_marked or test_plain", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=2, deselected=1)


def test_ci_true_turns_chaos_on(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    pytester.makepyfile(TESTS)
    result = pytester.runpytest("-k", "test_marked", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, deselected=2)


def test_external_stack_options_take_environment_defaults(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHAOS_SERVICE_URL", "http://svc:3000")
    monkeypatch.setenv("CHAOS_TOXIPROXY_URL", "http://tp:8474")
    monkeypatch.setenv("CHAOS_DATABASE_URL", "postgresql://db/coupons")
    pytester.makepyfile(
        """
        def test_config(chaos_config):
            assert chaos_config.external
            assert chaos_config.service_url == "http://svc:3000"
            stack = chaos_config.build_stack()
            assert type(stack).__name__ == "ExternalStack"
            assert stack.endpoints.toxiproxy_url == "http://tp:8474"
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
