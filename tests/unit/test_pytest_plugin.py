"""The chaos pytest plugin's gate, options and scenario files, tested with pytester."""

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

SCENARIO_FILE = """
scenarios:
  - name: file-latency
    description: latency from a file
    fault: {kind: toxic, type: latency, attributes: {latency: 100}}
    expect: {during: [200]}
"""


@pytest.fixture(autouse=True)
def _no_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CI", "CHAOS_SERVICE_URL", "CHAOS_TOXIPROXY_URL", "CHAOS_SCENARIOS"):
        monkeypatch.delenv(name, raising=False)


def test_chaos_tests_are_skipped_without_ci(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(TESTS)
    result = pytester.runpytest("-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines([f"*{SKIP_REASON[:40]}*"])


def test_chaos_option_runs_marked_tests(pytester: pytest.Pytester) -> None:
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


def test_ini_turns_chaos_on(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nchaos = true\n")
    pytester.makepyfile(TESTS)
    result = pytester.runpytest("-k", "test_marked", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, deselected=2)


def test_foreign_fixtures_with_the_same_names_are_left_alone(pytester: pytest.Pytester) -> None:
    # A project's own fixtures, named like the plugin's (old and new names): its tests
    # are neither marked chaos nor skipped.
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture
        def service_client():
            return "the project's own client"

        @pytest.fixture
        def chaos_service_client():
            return "also the project's own"
        """
    )
    pytester.makepyfile(
        """
        def test_uses_its_own_service_client(service_client):
            assert service_client == "the project's own client"

        def test_uses_its_own_chaos_named_fixture(chaos_service_client):
            assert chaos_service_client == "also the project's own"

        def test_not_marked(request):
            assert request.node.get_closest_marker("chaos") is None
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


def test_plugin_fixtures_are_resolved_through_a_project_fixture(pytester: pytest.Pytester) -> None:
    # A project fixture built on the plugin's stack fixtures makes its tests chaos tests.
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture
        def my_client(chaos_service_client):
            return chaos_service_client
        """
    )
    pytester.makepyfile("def test_uses_it(my_client):\n    pass\n")
    result = pytester.runpytest("-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=1)


def test_options_resolve_command_line_then_environment_then_ini(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini(
        "[pytest]\nchaos_service_url = http://ini:3000\nchaos_toxiproxy_url = http://ini:8474\n"
        "chaos_database_url = postgresql://ini/coupons\n"
    )
    monkeypatch.setenv("CHAOS_TOXIPROXY_URL", "http://env:8474")
    pytester.makepyfile(
        """
        def test_config(chaos_config):
            assert chaos_config.service_url == "http://cli:3000"
            assert chaos_config.toxiproxy_url == "http://env:8474"
            assert chaos_config.database_url == "postgresql://ini/coupons"
            stack = chaos_config.build_stack()
            assert type(stack).__name__ == "ExternalStack"
        """
    )
    result = pytester.runpytest("--chaos-service-url", "http://cli:3000", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


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


def test_scenario_files_become_chaos_tests(pytester: pytest.Pytester) -> None:
    path = pytester.makefile(".yaml", mine=SCENARIO_FILE)
    result = pytester.runpytest(
        "--chaos-scenarios", str(path), "--collect-only", "-q", "-p", "no:cacheprovider"
    )
    result.stdout.fnmatch_lines(["*mine.yaml::file-latency*"])
    result = pytester.runpytest("--chaos-scenarios", str(path), "-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=1)  # it uses the stack: CI-only like the others
    result = pytester.runpytest(
        "--chaos-scenarios", str(path), "-k", "not latency", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(deselected=1)


def test_scenario_files_by_relative_path_outside_the_rootdir(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", mine=SCENARIO_FILE)
    project = pytester.mkdir("project")
    (project / "test_plain.py").write_text("def test_plain():\n    pass\n")
    result = pytester.runpytest_subprocess(
        "--chaos-scenarios",
        "mine.yaml",
        "--collect-only",
        "-q",
        "-p",
        "no:cacheprovider",
        "--rootdir",
        str(project),
        str(project),
    )
    result.stdout.fnmatch_lines(["*test_plain*", "*mine.yaml::file-latency*"])


def test_a_directory_of_scenario_files(pytester: pytest.Pytester) -> None:
    folder = pytester.mkdir("scenarios")
    (folder / "a.yaml").write_text(SCENARIO_FILE)
    (folder / "b.yaml").write_text(SCENARIO_FILE.replace("file-latency", "other"))
    result = pytester.runpytest(
        "--chaos-scenarios", str(folder), "--collect-only", "-q", "-p", "no:cacheprovider"
    )
    result.stdout.fnmatch_lines(["*a.yaml::file-latency*", "*b.yaml::other*"])


def test_scenario_files_from_the_ini_file(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", mine=SCENARIO_FILE)
    pytester.makeini("[pytest]\nchaos_scenarios = mine.yaml\n")
    result = pytester.runpytest("--collect-only", "-q", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*mine.yaml::file-latency*"])


def test_an_invalid_scenario_file_stops_the_session(pytester: pytest.Pytester) -> None:
    good = pytester.makefile(".yaml", good=SCENARIO_FILE)
    bad = pytester.makefile(
        ".yaml",
        bad="""
        scenarios:
          - name: broken
            description: a typo in a latency bound
            fault: {kind: toxic, type: latency, attributes: {latency: 100}}
            expect: {during: [200], latency: {200: request_deadlin + slack}}
        """,
    )
    worse = pytester.makefile(".yaml", worse="scenarios:\n  - name: x\n")
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = pytester.runpytest(
        *("--chaos-scenarios", str(good)),
        *("--chaos-scenarios", str(bad)),
        *("--chaos-scenarios", str(worse)),
        "-p",
        "no:cacheprovider",
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*bad.yaml: scenario 'broken' (#1): expect.latency.200: *unknown name 'request_deadl*",
            "*worse.yaml: scenario 'x' (#1): description: expected a non-empty string*",
        ]
    )
