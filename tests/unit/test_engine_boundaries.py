"""The engine's error boundaries: foreign errors become ChaosError, and a failing clean-up
never hides the error that caused it."""

from __future__ import annotations

import pytest

from chaos.errors import ChaosError, ScenarioError
from chaos.run.engine import _then, boundary


def test_foreign_errors_become_chaos_errors_naming_the_step() -> None:
    with (
        pytest.raises(ChaosError, match="injecting latency: KeyError") as info,
        boundary("injecting latency"),
    ):
        raise KeyError("proxy")
    assert isinstance(info.value.__cause__, KeyError)


def test_our_own_errors_pass_unchanged() -> None:
    with pytest.raises(ScenarioError, match=r"^as is$"), boundary("anything"):
        raise ScenarioError("as is")


def test_a_failing_cleanup_is_a_note_on_the_original_error() -> None:
    def cleanup() -> None:
        raise OSError("toxiproxy gone")

    with (
        pytest.raises(ValueError, match="the fault failed") as info,
        _then(cleanup, "removing the fault"),
    ):
        raise ValueError("the fault failed")
    assert any("removing the fault failed too: OSError" in n for n in info.value.__notes__)


def test_a_failing_cleanup_after_success_is_raised_as_a_chaos_error() -> None:
    def cleanup() -> None:
        raise OSError("toxiproxy gone")

    with (
        pytest.raises(ChaosError, match="removing the fault: OSError"),
        _then(cleanup, "removing the fault"),
    ):
        pass


def test_cleanup_runs_once_either_way() -> None:
    calls: list[str] = []
    with _then(lambda: calls.append("ok"), "x"):
        pass
    with pytest.raises(RuntimeError), _then(lambda: calls.append("after error"), "x"):
        raise RuntimeError
    assert calls == ["ok", "after error"]
