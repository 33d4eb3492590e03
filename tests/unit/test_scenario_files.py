"""Scenario files: the loader, its error messages, bound expressions, fault kinds."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from chaos.core.bounds import SLACK, Bound, bound_names, evaluate
from chaos.core.limits import Limits
from chaos.errors import ScenarioError
from chaos.faults import NetworkToxic, ProxyDown, fault_kinds
from chaos.faults.chain import FaultChain
from chaos.scenarios.catalogue import catalogue
from chaos.scenarios.loader import ScenarioFileError, load_scenarios
from chaos.scenarios.model import Scenario
from chaos.targets.coupons import COUPONS, TerminateMidTransaction


def load(paths: list[Path]) -> list[Scenario]:
    """The loader with the coupon target's fault kinds, as the CLI gives them."""
    return load_scenarios(paths, kinds=COUPONS.fault_kinds())


LIMITS = Limits(
    pool_max_size=4,
    pool_min_size=4,
    pool_max_waiting=64,
    acquire_timeout=0.5,
    statement_timeout=1.5,
    connect_timeout=2.0,
    request_deadline=2.0,
    health_timeout=0.5,
    retry_after=1,
    reconnect_timeout=1.0,
)


def write(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def problems(*paths: Path) -> list[str]:
    with pytest.raises(ScenarioFileError) as info:
        load(paths)
    return info.value.problems


# ------------------------------------------------------------------------------ bounds


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("request_deadline + slack", 2.0 + SLACK),
        ("request_deadline + 0.5", 2.5),
        ("2 * acquire_timeout", 1.0),
        ("(statement_timeout - 0.5) / 2", 0.5),
        ("-1 + health_timeout", -0.5),
        ("3", 3.0),
    ],
)
def test_bounds_are_arithmetic_over_the_limits(text: str, seconds: float) -> None:
    assert Bound(text).seconds(LIMITS) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("request_deadlin + 1", "unknown name 'request_deadlin'"),
        ("__import__('os')", "is not allowed"),
        ("request_deadline ** 2", "is not allowed"),
        ("limits.request_deadline", "is not allowed"),
        ("1 / 0", "divides by zero"),
        ("request_deadline +", "is not an expression"),
        ("'text'", "is not allowed"),
        ("True", "is not allowed"),
    ],
)
def test_bad_bounds_are_named(text: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        evaluate(text, bound_names(LIMITS))


# ------------------------------------------------------------------------------ files

GOOD = """
scenarios:
  - name: my-latency
    description: a toxic by its type name, any attributes
    fault:
      kind: toxic
      type: latency
      attributes: {latency: 300, jitter: 10}
      stream: upstream
      toxicity: 0.5
    workload: {concurrency: 3, keys: 1, warmup: 5}
    duration: 1.5
    recovery_bound: 3
    expect:
      during: [200, 504]
      must_see: [200]
      latency: {504: request_deadline + 0.5}
      health: 200
      observed: [latency]
  - name: my-proxy-down
    description: a fault kind without parameters
    fault: {kind: proxy-down}
    expect: {during: [503]}
  - name: my-victim
    description: the coupon target's own fault kind
    fault: {kind: terminate-mid-transaction}
    expect: {during: [200, 503]}
  - name: a-future-toxic
    description: a toxic type this release does not know, passed to the server as is
    fault: {kind: toxic, type: brand_new, attributes: {knob: 3}}
    expect: {during: [200]}
"""


def test_a_file_declares_everything_a_scenario_has(tmp_path: Path) -> None:
    first, down, victim, future = load([write(tmp_path, "a.yaml", GOOD)])
    assert isinstance(first.fault, NetworkToxic)
    assert first.fault.toxic.to_payload() == {
        "name": "latency_upstream",
        "type": "latency",
        "stream": "upstream",
        "toxicity": 0.5,
        "attributes": {"latency": 300, "jitter": 10},
    }
    assert (first.workload.concurrency, first.workload.keys, first.workload.warmup) == (3, 1, 5)
    assert first.duration == 1.5
    assert first.recovery_bound.seconds(LIMITS) == 3.0
    assert down.recovery_bound.seconds(LIMITS) == pytest.approx(1.0 + 0.5 + SLACK)
    assert first.expect.during == {200, 504}
    assert first.expect.latency[504].seconds(LIMITS) == pytest.approx(2.5)
    assert first.expect.health == 200
    assert first.expect.observed == {"latency"}
    assert isinstance(down.fault, ProxyDown)
    assert isinstance(victim.fault, TerminateMidTransaction)
    assert future.fault.kind.startswith("brand_new(knob=3)")


def test_a_directory_loads_its_yaml_files(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", GOOD)
    write(tmp_path, "notes.txt", "not a scenario file")
    assert len(load([tmp_path])) == 4


def test_every_problem_of_every_file_is_reported_before_anything_runs(tmp_path: Path) -> None:
    bad = write(
        tmp_path,
        "bad.yaml",
        """
        scenarios:
          - name: typo-attribute
            description: d
            fault: {kind: toxic, type: latency, attributes: {latancy: 100}}
            expect: {during: [200]}
          - name: unknown-kind
            description: d
            fault: {kind: disk-full}
            expect: {during: [200]}
          - name: bad-status
            description: d
            fault: {kind: proxy-down}
            expect: {during: [200, "x"]}
          - name: must-see-outside
            description: d
            fault: {kind: proxy-down}
            expect: {during: [503], must_see: [504]}
          - name: extra-field
            description: d
            fault: {kind: proxy-down}
            expect: {during: [503]}
            durations: 3
          - name: bad-workload
            description: d
            fault: {kind: proxy-down}
            workload: {concurrency: 0}
            expect: {during: [503]}
          - name: bad-param
            description: d
            fault: {kind: proxy-down, seconds: 3}
            expect: {during: [503]}
          - name: bad-evidence
            description: d
            fault: {kind: proxy-down}
            expect: {during: [503], observed: [vibes]}
        """,
    )
    other = write(tmp_path, "other.yaml", "scenarios: {not: a list}\n")
    found = problems(bad, other)
    expected = [
        "bad.yaml: scenario 'typo-attribute' (#1): fault: toxic: attributes ['latancy'] "
        "unknown to toxic 'latency'",
        "bad.yaml: scenario 'unknown-kind' (#2): fault: kind: expected one of",
        "bad.yaml: scenario 'bad-status' (#3): expect.during: expected a list of HTTP statuses",
        "bad.yaml: scenario 'must-see-outside' (#4): expect.must_see: [504] not within",
        "bad.yaml: scenario 'extra-field' (#5): durations: unknown field",
        "bad.yaml: scenario 'bad-workload' (#6): workload.concurrency: expected a positive",
        "bad.yaml: scenario 'bad-param' (#7): fault: ",
        "bad.yaml: scenario 'bad-evidence' (#8): expect.observed: expected a non-empty list",
        "other.yaml: scenario -: scenarios: expected a top-level `scenarios:` list",
    ]
    assert len(found) == len(expected), found
    for line, start in zip(found, expected, strict=True):
        assert start in line, (start, line)
    assert "seconds" in found[6]


def test_duplicate_names_across_files_are_an_error(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yaml", GOOD)
    b = write(tmp_path, "b.yaml", GOOD)
    assert any("'my-latency'" in p and "already declared in" in p for p in problems(a, b))


def test_invalid_yaml_is_named(tmp_path: Path) -> None:
    (line,) = problems(write(tmp_path, "broken.yaml", "scenarios: [\n"))
    assert "broken.yaml" in line
    assert "not valid YAML" in line


def test_the_catalogue_is_a_scenario_file() -> None:
    names = [s.name for s in catalogue(COUPONS)]
    assert len(names) == len(set(names)) >= 24
    assert {"reset-peer-partial", "async-failover-promoted"} <= set(names)


HA = """
scenarios:
  - name: my-failover
    description: a chain of HA faults with its expectations
    stack: {kind: ha, patroni: {synchronous_mode: false, maximum_lag_on_failover: 1048576}}
    fault:
      - {kind: replication-partition, quiesce: true}
      - {kind: await-successes, count: 5}
      - {kind: power-cut}
    duration: 0
    until: {503: 3}
    recovery_bound: loop_wait + reconnect_timeout + request_deadline + slack
    expect:
      during: [200, 503]
      lost_writes: {between: [partition, promotion], at_least: 5}
      single_primary: true
      primary: changed
      replicas_agree: true
"""


def test_a_file_declares_ha_scenarios(tmp_path: Path) -> None:
    (s,) = load([write(tmp_path, "ha.yaml", HA)])
    assert s.stack == "ha"
    assert s.stack_settings == {"synchronous_mode": False, "maximum_lag_on_failover": 1048576}
    assert isinstance(s.fault, FaultChain)
    assert [type(f).__name__ for f in s.fault.faults] == [
        "ReplicationPartition",
        "AwaitSuccesses",
        "PowerCut",
    ]
    assert s.until == {503: 3}
    names = {"loop_wait": 1.0}
    assert s.recovery_bound.seconds(LIMITS, names) == pytest.approx(1 + 1 + 2 + SLACK)
    assert s.expect.lost_writes.between == ("partition", "promotion")
    assert s.expect.lost_writes.at_least == 5
    assert (s.expect.single_primary, s.expect.primary, s.expect.replicas_agree) == (
        True,
        "changed",
        True,
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (("stack: {kind: ha, patroni:", "stack: {kind: ha, patroni: {ttl: 5}, x:"), "stack"),
        (("synchronous_mode: false", "synchronus_mode: false"), "stack.patroni"),
        (("stack: {kind: ha,", "stack: {kind: local,"), "stack.kind"),
        (("primary: changed", "primary: moved"), "expect.primary"),
        (("at_least: 5}", "at_least: 5, at_most: 2}"), "expect.lost_writes.at_most"),
        (("{kind: power-cut}", "{kind: power-cut, promotion: maybe}"), "fault[2]"),
        (("until: {503: 3}", "until: {503: 0}"), "until.503"),
    ],
)
def test_ha_declarations_are_checked(tmp_path: Path, change: tuple[str, str], field: str) -> None:
    (line,) = problems(write(tmp_path, "bad.yaml", HA.replace(*change)))
    assert f": {field}" in line, line


def test_stack_names_are_only_for_the_stack_that_has_them(tmp_path: Path) -> None:
    text = HA.replace(
        "stack: {kind: ha, patroni: {synchronous_mode: false, maximum_lag_on_failover: 1048576}}",
        "stack: any",
    )
    text = text.replace("single_primary: true", "single_primary: false")
    (line,) = problems(write(tmp_path, "local.yaml", text))
    assert "recovery_bound" in line
    assert "loop_wait" in line


def test_third_party_fault_kinds_come_from_entry_points(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from importlib.metadata import EntryPoint

    import chaos.faults.registry as registry

    ep = EntryPoint(
        name="always-down", value="chaos.faults.network:ProxyDown", group="chaos.faults"
    )
    monkeypatch.setattr(
        registry, "entry_points", lambda group: [ep] if group == "chaos.faults" else []
    )
    assert "always-down" in fault_kinds()
    (scenario,) = load(
        [
            write(
                tmp_path,
                "ep.yaml",
                """
                scenarios:
                  - name: from-a-plugin
                    description: a fault kind from another package
                    fault: {kind: always-down}
                    expect: {during: [503]}
                """,
            )
        ]
    )
    assert isinstance(scenario.fault, ProxyDown)


def test_a_scenario_names_the_router_it_needs_and_its_check_settings() -> None:
    from chaos.scenarios.loader import parse_scenarios

    text = """scenarios:
  - name: stale
    description: d
    stack: {kind: ha, router: {kind: haproxy, check_interval: 4, fall: 2}}
    fault: {kind: switchover}
    expect: {during: [200, 503]}
  - name: plain
    description: d
    stack: {kind: ha, router: libpq}
    fault: {kind: switchover}
    expect: {during: [200, 503]}
"""
    from chaos.faults.registry import fault_kinds

    kinds = fault_kinds()
    (stale, plain), problems = parse_scenarios(text, source="t", kinds=kinds)
    assert not problems
    assert (stale.router, dict(stale.router_settings)) == (
        "haproxy",
        {"check_interval": 4, "fall": 2},
    )
    assert (plain.router, dict(plain.router_settings)) == ("libpq", {})
    for bad, message in [
        ("{kind: any, router: haproxy}", "only for stack kind ha"),
        ("{kind: ha, router: pgpool}", "expected one of libpq, haproxy"),
        ("{kind: ha, router: {kind: libpq, fall: 2}}", "not for libpq"),
        ("{kind: ha, router: {kind: haproxy, fall: 0}}", "fall: expected a whole number"),
        ("{kind: ha, router: {kind: haproxy, query_wait_timeout: 5}}", "PgBouncer's, not for"),
        ("{kind: ha, router: {kind: pgbouncer, query_wait_timeout: 0}}", "expected seconds > 0"),
    ]:
        _, problems = parse_scenarios(
            text.replace("{kind: ha, router: {kind: haproxy, check_interval: 4, fall: 2}}", bad),
            source="t",
            kinds=kinds,
        )
        assert any(message in str(p) for p in problems), (bad, problems)


def test_a_scenario_sets_the_service_and_what_every_touched_request_answers() -> None:
    from chaos.faults.registry import fault_kinds
    from chaos.scenarios.loader import parse_scenarios

    text = """scenarios:
  - name: paused
    description: d
    stack: {kind: ha, router: {kind: pgbouncer, check_interval: 0.5, query_wait_timeout: 20}}
    service: {DB_POOL_ACQUIRE_TIMEOUT: 20, REQUEST_DEADLINE: 25.5, DB_TRANSACTION_POOLER: true}
    fault: {kind: paused-switchover}
    expect: {during: [200], touched: [200]}
  - name: blackhole
    description: d
    fault: {kind: toxic, type: timeout, attributes: {timeout: 0}, proxy: pgbouncer}
    expect: {during: [503, 504]}
"""
    kinds = fault_kinds()
    (paused, blackhole), problems = parse_scenarios(text, source="t", kinds=kinds)
    assert not problems
    assert (paused.router, dict(paused.router_settings)) == (
        "pgbouncer",
        {"check_interval": 0.5, "query_wait_timeout": 20},
    )
    assert dict(paused.service_settings) == {
        "DB_POOL_ACQUIRE_TIMEOUT": "20",
        "REQUEST_DEADLINE": "25.5",
        "DB_TRANSACTION_POOLER": "true",
    }
    assert paused.expect.touched == {200}
    assert blackhole.expect.touched is None
    assert isinstance(blackhole.fault, NetworkToxic)
    assert blackhole.fault.proxy == "pgbouncer"
    assert blackhole.fault.kind.endswith("on proxy pgbouncer")
    for bad, message in [
        ("{DB_POOL_ACQUIRE_TIMEOUT: 20, request_deadline: 25.5,", "setting names in capitals"),
        ("{DB_POOL_ACQUIRE_TIMEOUT: [20], REQUEST_DEADLINE: 25.5,", "expected a number"),
    ]:
        _, problems = parse_scenarios(
            text.replace("{DB_POOL_ACQUIRE_TIMEOUT: 20, REQUEST_DEADLINE: 25.5,", bad),
            source="t",
            kinds=kinds,
        )
        assert any(message in str(p) for p in problems), (bad, problems)
    _, problems = parse_scenarios(
        text.replace("touched: [200]", "touched: []"), source="t", kinds=kinds
    )
    assert any("expect.touched" in str(p) for p in problems), problems
