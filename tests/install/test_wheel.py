"""The toolkit in someone else's project, as a user meets it (README, "Using the toolkit
in your own project"): the wheel built from this checkout, installed into a fresh
virtualenv outside it, beside a host project with its own `app` package and beside Chaos
Toolkit, runs a scenario file against a stack.

CI-only (marker `chaos`): it builds a wheel and installs its dependencies from the
package index.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from zipfile import ZipFile

import pytest

from chaos.infra.stack import COMPOSE_EXTRA, LocalStack
from chaos.targets.coupons import COUPONS

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]
#: Bound on one packaging command (a wheel build, an install from the package index).
PIP_TIMEOUT = 900.0
#: Bound on the scenario run (three short scenarios; the stack is already up).
RUN_TIMEOUT = 600.0

#: A user's scenario file: two scenarios copied from the shipped catalogue, and one whose
#: expectation is wrong on purpose, so the run must fail and name the check.
MINE = """
scenarios:
  - name: mine-latency
    description: 100 ms of latency each way; every request succeeds, slower.
    fault: {kind: toxic, type: latency, attributes: {latency: 100}}
    expect:
      during: [200]
      must_see: [200]
      latency: {200: request_deadline + slack}
  - name: mine-proxy-down
    description: The proxy disabled; 503 within the acquire timeout.
    fault: {kind: proxy-down}
    expect:
      during: [503]
      must_see: [503]
      latency: {503: acquire_timeout + slack}
  - name: mine-wrong
    description: The proxy disabled, expecting only 200s (a wrong expectation).
    fault: {kind: proxy-down}
    expect: {during: [200]}
"""


@dataclass(frozen=True)
class Installed:
    """The fresh virtualenv, the wheel, and the host project's directory."""

    venv: Path
    wheel: Path
    host: Path

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)


def _run(
    argv: Sequence[str], *, cwd: Path, timeout: float = PIP_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    # Nothing of this checkout or of the caller's chaos settings leaks into the user's run.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CHAOS_", "PYTHON", "VIRTUAL_ENV")) and k != "CI"
    }
    return subprocess.run(
        list(argv), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _ok(argv: Sequence[str], *, cwd: Path) -> str:
    done = _run(argv, cwd=cwd)
    assert done.returncode == 0, f"{argv} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    work = tmp_path_factory.mktemp("elsewhere")
    assert ROOT not in work.parents
    # Built from a copy of what the wheel is made of: a build writes into its source tree.
    source = work / "source"
    shutil.copytree(ROOT / "chaos", source / "chaos", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", "dist", str(source)]
    _ok(build, cwd=work)
    (wheel,) = (work / "dist").glob("pgchaos-*.whl")
    venv.create(work / "venv", with_pip=True)
    host = work / "host"
    (host / "app").mkdir(parents=True)
    (host / "app" / "__init__.py").write_text('NAME = "the host project\'s own app"\n')
    # Chaos Toolkit first, then ours: the order in which our `chaos` script replaces its.
    pip = str(work / "venv" / "bin" / "pip")
    _ok([pip, "install", "-q", "chaostoolkit"], cwd=host)
    _ok([pip, "install", "-q", str(wheel)], cwd=host)
    return Installed(work / "venv", wheel, host)


def test_the_wheel_ships_the_toolkit_and_no_top_level_app(installed: Installed) -> None:
    with ZipFile(installed.wheel) as wheel:
        tops = {name.split("/")[0] for name in wheel.namelist()}
        names = set(wheel.namelist())
    assert tops == {"chaos", "pgchaos-0.1.0.dist-info"}
    assert {"chaos/scenarios/catalogue.yaml", "chaos/scenarios/ha.yaml", "chaos/py.typed"} <= names


def test_the_host_keeps_its_app_and_both_chaos_commands_work(installed: Installed) -> None:
    python = installed.bin("python")
    code = "import app, chaos, chaostoolkit; print(app.NAME)"
    assert _ok([python, "-c", code], cwd=installed.host).strip() == "the host project's own app"
    assert "usage: pgchaos" in _ok([installed.bin("pgchaos"), "--help"], cwd=installed.host)
    theirs = _ok([installed.bin("chaos"), "--help"], cwd=installed.host)
    assert "Usage: chaos [OPTIONS] COMMAND" in theirs, theirs  # Chaos Toolkit's own help
    assert "discover" in theirs


def test_a_scenario_file_runs_against_a_stack(installed: Installed) -> None:
    mine = installed.host / "mine.yaml"
    mine.write_text(MINE)
    reports = installed.host / "reports"
    # The stack under test: this checkout's service, PostgreSQL and Toxiproxy.
    stack = LocalStack(service_settings_names=COUPONS.settings_names)
    try:
        stack.start()
        e = stack.endpoints
        done = _run(
            [
                installed.bin("pgchaos"),
                "run",
                "--service-url",
                e.service_url,
                "--toxiproxy-url",
                e.toxiproxy_url,
                "--database-url",
                e.database_url,
                "--scenarios",
                str(mine),
                "--report-dir",
                str(reports),
            ],
            cwd=installed.host,
            timeout=RUN_TIMEOUT,
        )
    finally:
        stack.stop()
    out = done.stdout + done.stderr
    assert "Traceback" not in out, out[-4000:]
    assert done.returncode == 1, out[-4000:]  # the wrong expectation fails, nothing errors
    assert "mine-wrong" in out
    assert "FAIL answers-during-fault" in out
    journal = json.loads((reports / "journal.json").read_text())
    verdicts = {e["scenario"]: e["passed"] for e in journal}
    assert verdicts == {"mine-latency": True, "mine-proxy-down": True, "mine-wrong": False}
    assert {p.name for p in reports.iterdir()} == {"journal.json", "junit.xml", "report.html"}


def test_the_compose_path_without_its_extra_says_which_extra(installed: Installed) -> None:
    done = _run(
        [installed.bin("pgchaos"), "run", "--stack", "compose", "--compose-file", "none.yml"],
        cwd=installed.host,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"pgchaos: the compose stack's database faults need the Docker SDK: {COMPOSE_EXTRA}"
    ]
