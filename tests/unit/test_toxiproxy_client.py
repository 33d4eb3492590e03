"""Unit tests of chaos.infra.toxiproxy over httpx.MockTransport (no network, no server)."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

import chaos.infra.toxiproxy as tp
from chaos.errors import ChaosError
from chaos.infra.toxiproxy import (
    BadRequest,
    Bandwidth,
    Conflict,
    Latency,
    LimitData,
    NotFound,
    Proxy,
    ProxyConfig,
    ResetPeer,
    ServerError,
    Slicer,
    SlowClose,
    Timeout,
    Toxic,
    ToxicSpec,
    ToxiproxyAPIError,
    ToxiproxyClient,
    ToxiproxyError,
    ToxiproxyUnavailable,
    wait_until_ready,
)

BASE = "http://toxiproxy.test:8474"
Handler = Callable[[httpx.Request], httpx.Response]


def proxy_json(name: str = "pg", *, enabled: bool = True, toxics: Any = ()) -> dict[str, Any]:
    """A proxy exactly as the server renders it, stray "Logger" key included."""
    return {
        "name": name,
        "listen": "127.0.0.1:25432",
        "upstream": "127.0.0.1:5432",
        "enabled": enabled,
        "Logger": {},
        "toxics": list(toxics),
    }


LATENCY_JSON = {
    "attributes": {"latency": 100, "jitter": 0},
    "name": "latency_downstream",
    "type": "latency",
    "stream": "downstream",
    "toxicity": 1,
}


def server_error(status: int, message: str) -> httpx.Response:
    """An error answer as the server sends it: JSON body, text/plain content type."""
    body = json.dumps({"error": message, "status": status}) + "\n"
    return httpx.Response(
        status, content=body.encode(), headers={"Content-Type": "text/plain; charset=utf-8"}
    )


class Recorder:
    """MockTransport handler that records requests and replays canned answers."""

    def __init__(self, *answers: httpx.Response | Handler) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if not self.answers:
            raise AssertionError(f"unexpected request {request.method} {request.url}")
        answer = self.answers.pop(0)
        return answer(request) if callable(answer) else answer

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]

    def body(self, index: int = -1) -> Any:
        return json.loads(self.requests[index].content)


MakeClient = Callable[..., tuple[ToxiproxyClient, "Recorder"]]


@pytest.fixture
def make_client() -> Iterator[MakeClient]:
    clients: list[ToxiproxyClient] = []

    def make(*answers: httpx.Response | Handler) -> tuple[ToxiproxyClient, Recorder]:
        recorder = Recorder(*answers)
        client = ToxiproxyClient(BASE, transport=httpx.MockTransport(recorder))
        clients.append(client)
        return client, recorder

    yield make
    for client in clients:
        client.close()


# --------------------------------------------------------------------------- module surface


def test_all_is_sorted_and_exported() -> None:
    assert tp.__all__ == sorted(tp.__all__)
    for name in tp.__all__:
        assert hasattr(tp, name), name


def test_exception_tree() -> None:
    assert issubclass(ToxiproxyError, ChaosError)
    assert issubclass(ToxiproxyUnavailable, ToxiproxyError)
    assert issubclass(ToxiproxyAPIError, ToxiproxyError)
    for cls in (BadRequest, NotFound, Conflict, ServerError):
        assert issubclass(cls, ToxiproxyAPIError)
    assert not issubclass(ToxiproxyUnavailable, ToxiproxyAPIError)


# --------------------------------------------------------------------------- toxic specs


@pytest.mark.parametrize(
    ("spec", "payload"),
    [
        (
            Latency(100, 10),
            {
                "name": "latency_downstream",
                "type": "latency",
                "stream": "downstream",
                "toxicity": 1.0,
                "attributes": {"latency": 100, "jitter": 10},
            },
        ),
        (
            Bandwidth(64, stream="upstream"),
            {
                "name": "bandwidth_upstream",
                "type": "bandwidth",
                "stream": "upstream",
                "toxicity": 1.0,
                "attributes": {"rate": 64},
            },
        ),
        (
            SlowClose(250, toxicity=0.5),
            {
                "name": "slow_close_downstream",
                "type": "slow_close",
                "stream": "downstream",
                "toxicity": 0.5,
                "attributes": {"delay": 250},
            },
        ),
        (
            Timeout(0, name="blackhole"),
            {
                "name": "blackhole",
                "type": "timeout",
                "stream": "downstream",
                "toxicity": 1.0,
                "attributes": {"timeout": 0},
            },
        ),
        (
            ResetPeer(),
            {
                "name": "reset_peer_downstream",
                "type": "reset_peer",
                "stream": "downstream",
                "toxicity": 1.0,
                "attributes": {"timeout": 0},
            },
        ),
        (
            Slicer(average_size=64, size_variation=16, delay_us=500),
            {
                "name": "slicer_downstream",
                "type": "slicer",
                "stream": "downstream",
                "toxicity": 1.0,
                "attributes": {"average_size": 64, "size_variation": 16, "delay": 500},
            },
        ),
        (
            LimitData(2048, stream="upstream", toxicity=0.0),
            {
                "name": "limit_data_upstream",
                "type": "limit_data",
                "stream": "upstream",
                "toxicity": 0.0,
                "attributes": {"bytes": 2048},
            },
        ),
    ],
)
def test_spec_payload(spec: ToxicSpec, payload: dict[str, Any]) -> None:
    assert spec.to_payload() == payload
    assert spec.toxic_name == payload["name"]
    assert spec.type == payload["type"]
    assert spec.attributes() == payload["attributes"]
    json.dumps(spec.to_payload())  # serialisable as is


def test_specs_are_frozen_and_hashable() -> None:
    spec = Latency(100)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.latency_ms = 5  # type: ignore[misc]
    assert spec == Latency(latency_ms=100, jitter_ms=0)
    assert len({spec, Latency(100)}) == 1


@pytest.mark.parametrize("toxicity", [-0.1, 1.0001, math.nan, math.inf])
def test_spec_rejects_toxicity_out_of_range(toxicity: float) -> None:
    with pytest.raises(ValueError, match=r"toxicity must be within \[0, 1\]"):
        Latency(10, toxicity=toxicity)


@pytest.mark.parametrize(
    ("factory", "field_name"),
    [
        (lambda: Latency(-1), "latency_ms"),
        (lambda: Latency(1, -1), "jitter_ms"),
        (lambda: Bandwidth(-5), "rate_kb"),
        (lambda: SlowClose(-1), "delay_ms"),
        (lambda: Timeout(-1), "timeout_ms"),
        (lambda: ResetPeer(-1), "timeout_ms"),
        (lambda: Slicer(-1, 0, 0), "average_size"),
        (lambda: Slicer(1, -1, 0), "size_variation"),
        (lambda: Slicer(1, 0, -1), "delay_us"),
        (lambda: LimitData(-1), "bytes"),
    ],
)
def test_spec_rejects_negative_numbers(factory: Callable[[], ToxicSpec], field_name: str) -> None:
    with pytest.raises(ValueError, match=rf"\.{field_name} must be >= 0, got -\d"):
        factory()


def test_spec_rejects_bad_stream_name_and_types() -> None:
    with pytest.raises(ValueError, match="stream must be one of"):
        Latency(1, stream="sideways")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="name must be None or a non-empty string"):
        Latency(1, name="")
    with pytest.raises(TypeError, match=r"Latency\.latency_ms must be an int, got 1\.5"):
        Latency(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be an int, got True"):
        LimitData(True)
    with pytest.raises(TypeError, match="abstract"):
        ToxicSpec()


def test_zero_values_are_valid() -> None:
    assert Timeout(0).attributes() == {"timeout": 0}
    assert Bandwidth(0, toxicity=0.0).toxicity == 0.0


# --------------------------------------------------------------------------- client basics


def test_user_agent_accept_and_timeout_on_every_request(make_client: MakeClient) -> None:
    client, rec = make_client(httpx.Response(200, json={}), httpx.Response(204))
    client.proxies()
    client.reset()
    for request in rec.requests:
        user_agent = request.headers["User-Agent"]
        assert user_agent.startswith("chaos-toolkit/")
        assert not user_agent.startswith("Mozilla/")
        assert request.headers["Accept"] == "application/json"
        assert request.extensions["timeout"] == {
            "connect": 5.0,
            "read": 5.0,
            "write": 5.0,
            "pool": 5.0,
        }


def test_custom_timeout_applies(make_client: MakeClient) -> None:
    rec = Recorder(httpx.Response(200, json={}))
    with ToxiproxyClient(BASE, timeout=0.25, transport=httpx.MockTransport(rec)) as client:
        client.proxies()
    assert set(rec.last.extensions["timeout"].values()) == {0.25}


@pytest.mark.parametrize("timeout", [0, -1.0, math.nan])
def test_client_rejects_non_positive_timeout(timeout: float) -> None:
    with pytest.raises(ValueError, match="timeout must be > 0"):
        ToxiproxyClient(BASE, timeout=timeout)


def test_context_manager_closes() -> None:
    rec = Recorder()
    with ToxiproxyClient(BASE + "/", transport=httpx.MockTransport(rec)) as client:
        assert not client.is_closed
        assert client.base_url == BASE
        assert "toxiproxy.test" in repr(client)
    assert client.is_closed


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (
            httpx.Response(
                200,
                content=b'{"version": "2.12.0"}\n',
                headers={"Content-Type": "application/json;charset=utf-8"},
            ),
            "2.12.0",
        ),
        (httpx.Response(200, text="2.1.4\n"), "2.1.4"),
        (httpx.Response(200, json="2.5.0"), "2.5.0"),
    ],
)
def test_version_json_or_plain_text(
    make_client: MakeClient, answer: httpx.Response, expected: str
) -> None:
    client, rec = make_client(answer)
    assert client.version() == expected
    assert (rec.last.method, rec.last.url.path) == ("GET", "/version")


# --------------------------------------------------------------------------- proxies


def test_create_proxy_payload_and_parse(make_client: MakeClient) -> None:
    client, rec = make_client(httpx.Response(201, json=proxy_json(toxics=[LATENCY_JSON])))
    proxy = client.create_proxy("pg", listen="127.0.0.1:0", upstream="127.0.0.1:5432")
    assert (rec.last.method, str(rec.last.url)) == ("POST", f"{BASE}/proxies")
    assert rec.last.headers["Content-Type"] == "application/json"
    assert rec.body() == {
        "name": "pg",
        "listen": "127.0.0.1:0",
        "upstream": "127.0.0.1:5432",
        "enabled": True,
    }
    assert proxy == Proxy(
        name="pg",
        listen="127.0.0.1:25432",
        upstream="127.0.0.1:5432",
        enabled=True,
        toxics=(
            Toxic(
                name="latency_downstream",
                type="latency",
                stream="downstream",
                toxicity=1.0,
                attributes={"latency": 100, "jitter": 0},
            ),
        ),
    )
    assert isinstance(proxy.toxics[0].toxicity, float)
    assert (proxy.listen_host, proxy.listen_port) == ("127.0.0.1", 25432)


def test_create_disabled_proxy(make_client: MakeClient) -> None:
    client, rec = make_client(httpx.Response(201, json=proxy_json(enabled=False)))
    assert not client.create_proxy("pg", listen="x:1", upstream="y:2", enabled=False).enabled
    assert rec.body()["enabled"] is False


def test_value_objects_are_immutable(make_client: MakeClient) -> None:
    client, _ = make_client(httpx.Response(200, json=proxy_json(toxics=[LATENCY_JSON])))
    proxy = client.get_proxy("pg")
    with pytest.raises(dataclasses.FrozenInstanceError):
        proxy.enabled = False  # type: ignore[misc]
    with pytest.raises(TypeError):
        proxy.toxics[0].attributes["latency"] = 1  # type: ignore[index]
    assert hash(proxy.toxics[0]) == hash(proxy.toxics[0])


def test_listen_host_of_ipv6_wildcard() -> None:
    proxy = Proxy(name="p", listen="[::]:41785", upstream="u:1", enabled=True)
    assert (proxy.listen_host, proxy.listen_port) == ("::", 41785)


def test_proxies_index(make_client: MakeClient) -> None:
    client, rec = make_client(
        httpx.Response(200, json={"a": proxy_json("a"), "b": proxy_json("b", enabled=False)})
    )
    proxies = client.proxies()
    assert sorted(proxies) == ["a", "b"]
    assert proxies["b"].enabled is False
    assert (rec.last.method, rec.last.url.path) == ("GET", "/proxies")


def test_names_are_url_quoted(make_client: MakeClient) -> None:
    client, rec = make_client(httpx.Response(200, json=proxy_json("my proxy")))
    client.get_proxy("my proxy")
    assert rec.last.url.raw_path == b"/proxies/my%20proxy"


def test_get_and_delete_proxy(make_client: MakeClient) -> None:
    client, rec = make_client(httpx.Response(200, json=proxy_json()), httpx.Response(204))
    assert client.get_proxy("pg").name == "pg"
    client.delete_proxy("pg")
    assert [(r.method, r.url.path) for r in rec.requests] == [
        ("GET", "/proxies/pg"),
        ("DELETE", "/proxies/pg"),
    ]


def test_update_proxy_sends_only_given_fields_with_patch(make_client: MakeClient) -> None:
    client, rec = make_client(
        httpx.Response(200, json=proxy_json()),
        httpx.Response(200, json=proxy_json()),
        httpx.Response(200, json=proxy_json()),
    )
    client.update_proxy("pg", upstream="127.0.0.1:6543")
    assert (rec.last.method, rec.last.url.path) == ("PATCH", "/proxies/pg")
    assert rec.body() == {"upstream": "127.0.0.1:6543"}
    client.update_proxy("pg", listen="127.0.0.1:1", upstream="u:2", enabled=False)
    assert rec.body() == {"listen": "127.0.0.1:1", "upstream": "u:2", "enabled": False}
    client.update_proxy("pg")
    assert rec.body() == {}


def test_enable_disable(make_client: MakeClient) -> None:
    client, rec = make_client(
        httpx.Response(200, json=proxy_json(enabled=False)),
        httpx.Response(200, json=proxy_json(enabled=True)),
    )
    assert client.disable("pg").enabled is False
    assert (rec.last.method, rec.body()) == ("PATCH", {"enabled": False})
    assert client.enable("pg").enabled is True
    assert (rec.last.method, rec.body()) == ("PATCH", {"enabled": True})


def test_reset(make_client: MakeClient) -> None:
    client, rec = make_client(httpx.Response(204))
    client.reset()
    assert (rec.last.method, rec.last.url.path, rec.last.content) == ("POST", "/reset", b"")


def test_populate_accepts_configs_and_dicts(make_client: MakeClient) -> None:
    answer = {"proxies": [proxy_json("a"), proxy_json("b", enabled=False)]}
    client, rec = make_client(httpx.Response(201, json=answer))
    result = client.populate(
        [
            ProxyConfig("a", "127.0.0.1:0", "127.0.0.1:5432"),
            {"name": "b", "listen": "127.0.0.1:0", "upstream": "u:1", "enabled": False},
        ]
    )
    assert (rec.last.method, rec.last.url.path) == ("POST", "/populate")
    assert rec.body() == [
        {"name": "a", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:5432", "enabled": True},
        {"name": "b", "listen": "127.0.0.1:0", "upstream": "u:1", "enabled": False},
    ]
    assert [(p.name, p.enabled) for p in result] == [("a", True), ("b", False)]


def test_populate_empty_answer_is_null(make_client: MakeClient) -> None:
    client, rec = make_client(httpx.Response(201, json={"proxies": None}))
    assert client.populate([]) == []
    assert rec.body() == []


def test_populate_error_body_is_json_with_null_proxies(make_client: MakeClient) -> None:
    body = {"error": "missing required field: upstream at proxy 2", "status": 400, "proxies": None}
    client, _ = make_client(httpx.Response(400, json=body))
    with pytest.raises(BadRequest, match="upstream at proxy 2"):
        client.populate([{"name": "x", "listen": "127.0.0.1:0"}])


def test_proxy_config_validation() -> None:
    with pytest.raises(ValueError, match=r"ProxyConfig\.name"):
        ProxyConfig("", "l:1", "u:1")
    with pytest.raises(ValueError, match=r"ProxyConfig\.upstream"):
        ProxyConfig("n", "l:1", "")


# --------------------------------------------------------------------------- toxics


def test_add_toxic_posts_spec_payload(make_client: MakeClient) -> None:
    client, rec = make_client(httpx.Response(200, json=LATENCY_JSON))
    toxic = client.add_toxic("pg", Latency(100))
    assert (rec.last.method, rec.last.url.path) == ("POST", "/proxies/pg/toxics")
    assert rec.body() == Latency(100).to_payload()
    assert toxic.name == "latency_downstream"
    assert dict(toxic.attributes) == {"latency": 100, "jitter": 0}


def test_toxics_list_and_get(make_client: MakeClient) -> None:
    client, rec = make_client(
        httpx.Response(200, json=[LATENCY_JSON]), httpx.Response(200, json=LATENCY_JSON)
    )
    assert [t.name for t in client.toxics("pg")] == ["latency_downstream"]
    assert rec.last.url.path == "/proxies/pg/toxics"
    assert client.get_toxic("pg", "latency_downstream").type == "latency"
    assert rec.last.url.path == "/proxies/pg/toxics/latency_downstream"


def test_update_toxic_patch_payload(make_client: MakeClient) -> None:
    updated = dict(LATENCY_JSON, toxicity=0.5, attributes={"latency": 100, "jitter": 5})
    client, rec = make_client(httpx.Response(200, json=updated), httpx.Response(200, json=updated))
    toxic = client.update_toxic("pg", "latency_downstream", attributes={"jitter": 5}, toxicity=0.5)
    assert (rec.last.method, rec.last.url.path) == (
        "PATCH",
        "/proxies/pg/toxics/latency_downstream",
    )
    assert rec.body() == {"attributes": {"jitter": 5}, "toxicity": 0.5}
    assert toxic.toxicity == 0.5
    client.update_toxic("pg", "latency_downstream", attributes=Latency(300).attributes())
    assert rec.body() == {"attributes": {"latency": 300, "jitter": 0}}


def test_update_toxic_validates_locally(make_client: MakeClient) -> None:
    client, rec = make_client()
    with pytest.raises(ValueError, match="toxicity must be within"):
        client.update_toxic("pg", "t", toxicity=1.5)
    with pytest.raises(ValueError, match="needs attributes and/or toxicity"):
        client.update_toxic("pg", "t")
    assert rec.requests == []


def test_remove_toxic(make_client: MakeClient) -> None:
    client, rec = make_client(httpx.Response(204))
    client.remove_toxic("pg", "lat")
    assert (rec.last.method, rec.last.url.path) == ("DELETE", "/proxies/pg/toxics/lat")


def test_toxic_context_manager_removes_when_block_raises(make_client: MakeClient) -> None:
    client, rec = make_client(httpx.Response(200, json=LATENCY_JSON), httpx.Response(204))
    yielded: list[Toxic] = []

    def block_that_fails() -> None:
        with client.toxic("pg", Latency(100)) as toxic:
            yielded.append(toxic)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        block_that_fails()
    assert [t.name for t in yielded] == ["latency_downstream"]
    assert [(r.method, r.url.path) for r in rec.requests] == [
        ("POST", "/proxies/pg/toxics"),
        ("DELETE", "/proxies/pg/toxics/latency_downstream"),
    ]


def test_toxic_context_manager_removes_on_success(make_client: MakeClient) -> None:
    client, rec = make_client(httpx.Response(200, json=LATENCY_JSON), httpx.Response(204))
    with client.toxic("pg", Latency(100)):
        pass
    assert rec.last.method == "DELETE"


def test_toxic_context_manager_ignores_404_on_removal(make_client: MakeClient) -> None:
    client, rec = make_client(
        httpx.Response(200, json=LATENCY_JSON), server_error(404, "toxic not found")
    )
    with client.toxic("pg", Latency(100)):
        pass
    assert len(rec.requests) == 2


def test_toxic_context_manager_reports_other_removal_errors(make_client: MakeClient) -> None:
    client, _ = make_client(
        httpx.Response(200, json=LATENCY_JSON), server_error(500, "something broke")
    )
    with pytest.raises(ServerError, match="something broke"), client.toxic("pg", Latency(1)):
        pass


def test_toxic_context_manager_does_not_remove_if_add_failed(make_client: MakeClient) -> None:
    client, rec = make_client(server_error(409, "toxic already exists"))
    with pytest.raises(Conflict), client.toxic("pg", Latency(100)):
        pytest.fail("block must not run")  # pragma: no cover
    assert len(rec.requests) == 1


# --------------------------------------------------------------------------- error mapping


@pytest.mark.parametrize(
    ("status", "message", "cls"),
    [
        (400, "missing required field: upstream", BadRequest),
        (404, "proxy not found", NotFound),
        (409, "proxy already exists", Conflict),
        (500, "listen tcp 127.0.0.1:1: bind: address already in use", ServerError),
        (503, "unavailable", ServerError),
    ],
)
def test_error_statuses_map_to_classes(
    make_client: MakeClient, status: int, message: str, cls: type[ToxiproxyAPIError]
) -> None:
    client, _ = make_client(server_error(status, message))
    with pytest.raises(cls) as info:
        client.create_proxy("pg", listen="127.0.0.1:1", upstream="127.0.0.1:2")
    err = info.value
    assert type(err) is cls
    assert (err.status, err.message, err.method) == (status, message, "POST")
    assert err.url == f"{BASE}/proxies"
    assert str(err) == f"POST /proxies answered {status}: {message}"
    assert isinstance(err, ToxiproxyError)


def test_error_message_example_from_brief(make_client: MakeClient) -> None:
    client, _ = make_client(server_error(409, "proxy already exists"))
    with pytest.raises(Conflict, match=r"^POST /proxies answered 409: proxy already exists$"):
        client.create_proxy("pg", listen="127.0.0.1:0", upstream="127.0.0.1:1")


def test_error_path_has_proxy_and_toxic_names(make_client: MakeClient) -> None:
    client, _ = make_client(server_error(404, "toxic not found"))
    with pytest.raises(NotFound) as info:
        client.get_toxic("pg", "nope")
    assert str(info.value) == "GET /proxies/pg/toxics/nope answered 404: toxic not found"


def test_non_json_error_body_falls_back_to_text(make_client: MakeClient) -> None:
    client, _ = make_client(
        httpx.Response(403, text="User agent not allowed\n", headers={"Content-Type": "text/plain"})
    )
    with pytest.raises(ToxiproxyAPIError) as info:
        client.proxies()
    assert type(info.value) is ToxiproxyAPIError
    assert info.value.message == "User agent not allowed"
    assert str(info.value) == "GET /proxies answered 403: User agent not allowed"


def test_empty_error_body_uses_reason_phrase(make_client: MakeClient) -> None:
    client, _ = make_client(httpx.Response(405))
    with pytest.raises(ToxiproxyAPIError, match="answered 405: Method Not Allowed"):
        client.reset()


def test_json_error_body_without_error_key_is_kept_raw(make_client: MakeClient) -> None:
    client, _ = make_client(httpx.Response(400, text='{"status": 400}'))
    with pytest.raises(BadRequest) as info:
        client.proxies()
    assert info.value.message == '{"status": 400}'


def test_non_json_success_body_is_a_toxiproxy_error(make_client: MakeClient) -> None:
    client, _ = make_client(httpx.Response(200, text="<html>not toxiproxy</html>"))
    with pytest.raises(ToxiproxyError, match="answered 200 with a non-JSON body") as info:
        client.proxies()
    assert not isinstance(info.value, ToxiproxyAPIError)
    assert isinstance(info.value.__cause__, ValueError)


def test_wrong_shape_success_body_is_a_toxiproxy_error(make_client: MakeClient) -> None:
    client, _ = make_client(httpx.Response(200, json={"name": "pg"}))
    with pytest.raises(ToxiproxyError, match="proxy field 'enabled'"):
        client.get_proxy("pg")


@pytest.mark.parametrize(
    ("exc", "match"),
    [
        (httpx.ConnectError("[Errno 111] Connection refused"), "failed: ConnectError"),
        (httpx.ReadTimeout("timed out"), r"timed out after 5s \(ReadTimeout\)"),
        (httpx.ConnectTimeout("timed out"), r"timed out after 5s \(ConnectTimeout\)"),
        (httpx.RemoteProtocolError("Server disconnected"), "failed: RemoteProtocolError"),
    ],
)
def test_transport_errors_become_unavailable(
    make_client: MakeClient, exc: httpx.TransportError, match: str
) -> None:
    def raise_it(request: httpx.Request) -> httpx.Response:
        raise exc

    client, _ = make_client(raise_it)
    with pytest.raises(ToxiproxyUnavailable, match=match) as info:
        client.proxies()
    assert info.value.__cause__ is exc
    assert "GET /proxies" in str(info.value)
    assert BASE in str(info.value)


def test_transport_error_in_toxic_removal_propagates(make_client: MakeClient) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    client, _ = make_client(httpx.Response(200, json=LATENCY_JSON), refuse)
    with pytest.raises(ToxiproxyUnavailable), client.toxic("pg", Latency(1)):
        pass


# --------------------------------------------------------------------------- wait_until_ready


def test_wait_until_ready_polls_until_answer() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise httpx.ConnectError("refused")
        return httpx.Response(200, json={"version": "2.12.0"})

    version = wait_until_ready(
        BASE, timeout=5.0, interval=0.001, transport=httpx.MockTransport(handler)
    )
    assert (version, calls) == ("2.12.0", 3)


def test_wait_until_ready_times_out_with_elapsed_seconds() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused")

    start = time.monotonic()
    with pytest.raises(ToxiproxyUnavailable) as info:
        wait_until_ready(BASE, timeout=0.1, interval=0.01, transport=httpx.MockTransport(handler))
    elapsed = time.monotonic() - start
    assert elapsed >= 0.1  # never gives up early (how late it may be is the machine's)
    message = str(info.value)
    assert message.startswith(f"Toxiproxy at {BASE} not ready after ")
    assert "timeout 0.1s" in message
    assert "Connection refused" in message
    assert isinstance(info.value.__cause__, ToxiproxyUnavailable)


def test_wait_until_ready_bounds_each_attempt_by_the_deadline() -> None:
    seen: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"]["read"])
        return httpx.Response(200, text="2.1.0")

    assert wait_until_ready(BASE, timeout=3.0, transport=httpx.MockTransport(handler)) == "2.1.0"
    assert 0 < seen[0] <= 3.0


def test_wait_until_ready_does_not_retry_api_errors() -> None:
    rec = Recorder(httpx.Response(403, text="User agent not allowed"))
    with pytest.raises(ToxiproxyAPIError, match="403"):
        wait_until_ready(BASE, timeout=5.0, transport=httpx.MockTransport(rec))
    assert len(rec.requests) == 1


@pytest.mark.parametrize(("timeout", "interval"), [(0.0, 0.05), (-1.0, 0.05), (1.0, -0.1)])
def test_wait_until_ready_validates_arguments(timeout: float, interval: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        wait_until_ready(BASE, timeout=timeout, interval=interval)
