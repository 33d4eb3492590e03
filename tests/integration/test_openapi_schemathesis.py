"""Schemathesis against the real service over HTTP: every answer is one /openapi.json documents.

The schema is loaded from the running service (the session's `service` fixture, a real
PostgreSQL behind it), so the test checks the document the service serves against the
answers the same service gives. Each operation runs schemathesis's phases: the
documented examples, the coverage phase (boundary values, missing and wrong-typed
fields, undeclared methods) and a bounded, derandomised fuzzing phase with valid and
invalid data. Checks: no 5xx, no undocumented status, bodies, content types and headers
(X-Request-Id on every answer) as documented, schema-invalid requests refused with a
4xx, and undeclared methods answered 405 with Allow.
"""

from __future__ import annotations

import pytest
import schemathesis
from schemathesis import Case
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)
from schemathesis.config import SchemathesisConfig
from schemathesis.schemas import BaseSchema

from chaos.infra.postgres import PostgresAdmin
from chaos.infra.service import ServiceProcess

#: Fuzzing examples per operation, per generation mode: bounds the run to about a minute
#: on a 2-core box (the coverage and examples phases add their own, fixed, cases).
MAX_EXAMPLES = 500
#: A fixed seed and no example database: every run sends the same requests.
SEED = 20261125
#: A generous bound for one answer; the service's own deadline is shorter (conftest).
REQUEST_TIMEOUT = 30

CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": SEED,
        # Hypothesis's one timing-based health check: a busy shared box must not fail the run.
        "suppress-health-check": ["too_slow"],
        "request-timeout": REQUEST_TIMEOUT,
        "generation": {
            "mode": "all",
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,
            "database": "none",
        },
        "phases": {
            "examples": {"enabled": True},
            "coverage": {"enabled": True},
            "fuzzing": {"enabled": True},
            "stateful": {"enabled": False},
        },
    }
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
    unsupported_method,
]


@pytest.fixture
def api_schema(service: ServiceProcess, db: PostgresAdmin) -> BaseSchema:
    """The document the running service serves, on emptied tables."""
    return schemathesis.openapi.from_url(f"{service.url}/openapi.json", config=CONFIG)


#: Resolved when the test runs; each operation is a subtest of the one test below.
schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
def test_every_answer_is_documented(case: Case) -> None:
    case.call_and_validate(checks=CHECKS)
