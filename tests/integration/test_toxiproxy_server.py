"""chaos.infra.toxiproxy against the real Toxiproxy server binary.

The binary is looked up in $TOXIPROXY_SERVER, then `toxiproxy-server` on PATH, then
.cache/bin/server (built by the project's setup). The module is skipped when none exists.
One server per module on a free loopback port; every test starts from an empty server.
"""

from __future__ import annotations

import os
import socket
import socketserver
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from chaos.errors import ProcessError
from chaos.infra.stack import find_toxiproxy_server
from chaos.infra.toxiproxy import (
    BadRequest,
    Bandwidth,
    Conflict,
    Latency,
    LimitData,
    NotFound,
    ProxyConfig,
    ResetPeer,
    ServerError,
    Slicer,
    SlowClose,
    Timeout,
    Toxic,
    ToxicSpec,
    ToxiproxyClient,
    ToxiproxyUnavailable,
    wait_until_ready,
)
from chaos.infra.waiting import free_port

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
IO_TIMEOUT_S = 5.0


def _find_server_binary() -> Path:
    try:
        return find_toxiproxy_server()
    except ProcessError:
        return Path(".cache/bin/server")


SERVER_BINARY = _find_server_binary()

pytestmark = pytest.mark.skipif(
    not (SERVER_BINARY.is_file() and os.access(SERVER_BINARY, os.X_OK)),
    reason=(
        f"Toxiproxy server binary not found or not executable at {SERVER_BINARY} "
        "(set TOXIPROXY_SERVER, put toxiproxy-server on PATH, or build .cache/bin/server)"
    ),
)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate, then kill after a bounded wait."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=STOP_TIMEOUT_S)


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log_path = tmp_path_factory.mktemp("toxiproxy") / "server.log"
    with log_path.open("wb") as log:
        # The free port may be grabbed between probing and binding: retry a few times.
        for attempt in range(1, 4):
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            proc = subprocess.Popen(
                [str(SERVER_BINARY), "-host", "127.0.0.1", "-port", str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
            try:
                try:
                    wait_until_ready(url, timeout=START_TIMEOUT_S)
                except ToxiproxyUnavailable as exc:
                    exited = proc.poll()
                    if exited is not None and attempt < 3:
                        continue  # most likely lost the port race; try another port
                    tail = log_path.read_text(errors="replace")[-2000:]
                    pytest.fail(
                        f"toxiproxy server {SERVER_BINARY} on port {port} not ready "
                        f"(exit code {exited}): {exc}\n--- server log ---\n{tail}"
                    )
                yield url
                return
            finally:
                _stop(proc)


@pytest.fixture
def client(server_url: str) -> Iterator[ToxiproxyClient]:
    with ToxiproxyClient(server_url, timeout=IO_TIMEOUT_S) as c:
        for name in c.proxies():
            c.delete_proxy(name)
        yield c
        for name in c.proxies():
            c.delete_proxy(name)


class _EchoHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.settimeout(IO_TIMEOUT_S)
        try:
            while data := self.request.recv(4096):
                self.request.sendall(data)
        except OSError:
            pass


class _EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture(scope="module")
def echo_upstream() -> Iterator[str]:
    """A TCP echo server on loopback, to push real bytes through proxies."""
    server = _EchoServer(("127.0.0.1", 0), _EchoHandler)
    thread = threading.Thread(target=server.serve_forever, name="echo-upstream", daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"{host!s}:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=IO_TIMEOUT_S)


def _roundtrip(port: int, payload: bytes) -> bytes:
    """Send payload through 127.0.0.1:port, read until EOF or len(payload) bytes."""
    with socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT_S) as sock:
        sock.sendall(payload)
        received = b""
        while len(received) < len(payload):
            chunk = sock.recv(4096)
            if not chunk:
                break
            received += chunk
        return received


# --------------------------------------------------------------------------- server


def test_version(client: ToxiproxyClient) -> None:
    version = client.version()
    assert isinstance(version, str)
    assert version  # "2.12.0" for a release build, "git" for a plain `go build`
    assert "{" not in version


def test_wait_until_ready_against_live_server(server_url: str, client: ToxiproxyClient) -> None:
    assert wait_until_ready(server_url, timeout=START_TIMEOUT_S) == client.version()


def test_wait_until_ready_times_out_on_closed_port() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ToxiproxyUnavailable, match=r"not ready after \d+\.\d\ds"):
        wait_until_ready(url, timeout=0.2, interval=0.02)


def test_unreachable_server_is_unavailable() -> None:
    with (
        ToxiproxyClient(f"http://127.0.0.1:{free_port()}", timeout=1.0) as c,
        pytest.raises(ToxiproxyUnavailable, match="ConnectError"),
    ):
        c.proxies()


# --------------------------------------------------------------------------- proxies


def test_create_list_get_delete_proxy(client: ToxiproxyClient) -> None:
    assert client.proxies() == {}
    created = client.create_proxy("pg", listen="127.0.0.1:0", upstream="127.0.0.1:5432")
    assert created.name == "pg"
    assert created.enabled is True
    assert created.upstream == "127.0.0.1:5432"
    assert created.listen_host == "127.0.0.1"
    assert created.listen_port > 0  # the server resolved port 0
    assert created.toxics == ()

    assert client.proxies() == {"pg": created}
    assert client.get_proxy("pg") == created

    client.delete_proxy("pg")
    assert client.proxies() == {}
    with pytest.raises(NotFound, match="proxy not found"):
        client.get_proxy("pg")


def test_duplicate_proxy_is_409(client: ToxiproxyClient) -> None:
    client.create_proxy("pg", listen="127.0.0.1:0", upstream="127.0.0.1:5432")
    with pytest.raises(Conflict) as info:
        client.create_proxy("pg", listen="127.0.0.1:0", upstream="127.0.0.1:5432")
    assert info.value.status == 409
    assert str(info.value) == "POST /proxies answered 409: proxy already exists"


def test_unknown_proxy_is_404_everywhere(client: ToxiproxyClient) -> None:
    calls: list[Callable[[], object]] = [
        lambda: client.get_proxy("nope"),
        lambda: client.delete_proxy("nope"),
        lambda: client.update_proxy("nope", enabled=False),
        lambda: client.toxics("nope"),
        lambda: client.add_toxic("nope", Latency(1)),
        lambda: client.get_toxic("nope", "t"),
        lambda: client.remove_toxic("nope", "t"),
    ]
    for call in calls:
        with pytest.raises(NotFound, match="answered 404: proxy not found"):
            call()


def test_missing_upstream_is_400(client: ToxiproxyClient) -> None:
    with pytest.raises(BadRequest, match="answered 400: missing required field: upstream"):
        client.create_proxy("pg", listen="127.0.0.1:0", upstream="")


def test_listen_address_in_use_is_500(client: ToxiproxyClient) -> None:
    first = client.create_proxy("a", listen="127.0.0.1:0", upstream="127.0.0.1:1")
    with pytest.raises(ServerError, match="address already in use") as info:
        client.create_proxy("b", listen=first.listen, upstream="127.0.0.1:1")
    assert info.value.status == 500
    assert set(client.proxies()) == {"a"}


def test_disable_enable(client: ToxiproxyClient, echo_upstream: str) -> None:
    proxy = client.create_proxy("echo", listen="127.0.0.1:0", upstream=echo_upstream)
    assert _roundtrip(proxy.listen_port, b"hello") == b"hello"

    disabled = client.disable("echo")
    assert disabled.enabled is False
    assert client.get_proxy("echo").enabled is False
    with pytest.raises(ConnectionRefusedError):
        _roundtrip(proxy.listen_port, b"hello")

    enabled = client.enable("echo")
    assert enabled.enabled is True
    assert enabled.listen == proxy.listen  # re-binds the same resolved port
    assert _roundtrip(proxy.listen_port, b"again") == b"again"


def test_update_proxy_upstream(client: ToxiproxyClient) -> None:
    client.create_proxy("pg", listen="127.0.0.1:0", upstream="127.0.0.1:5432")
    updated = client.update_proxy("pg", upstream="127.0.0.1:6543")
    assert updated.upstream == "127.0.0.1:6543"
    assert client.get_proxy("pg").upstream == "127.0.0.1:6543"


def test_create_disabled_proxy(client: ToxiproxyClient) -> None:
    proxy = client.create_proxy("off", listen="127.0.0.1:0", upstream="127.0.0.1:1", enabled=False)
    assert proxy.enabled is False
    assert proxy.listen == "127.0.0.1:0"  # not bound, so not resolved


# --------------------------------------------------------------------------- toxics

ALL_TOXICS: list[tuple[ToxicSpec, dict[str, int]]] = [
    (Latency(100, 10), {"jitter": 20}),
    (Bandwidth(64), {"rate": 128}),
    (SlowClose(250), {"delay": 500}),
    (Timeout(0), {"timeout": 1000}),
    (ResetPeer(0, stream="upstream"), {"timeout": 50}),
    (Slicer(average_size=64, size_variation=16, delay_us=500), {"delay": 1000}),
    (LimitData(4096), {"bytes": 8192}),
]


@pytest.mark.parametrize(("spec", "patch"), ALL_TOXICS, ids=[spec.type for spec, _ in ALL_TOXICS])
def test_toxic_lifecycle(client: ToxiproxyClient, spec: ToxicSpec, patch: dict[str, int]) -> None:
    client.create_proxy("pg", listen="127.0.0.1:0", upstream="127.0.0.1:5432")

    added = client.add_toxic("pg", spec)
    assert added.name == spec.toxic_name
    assert added.type == spec.type
    assert added.stream == spec.stream
    assert added.toxicity == spec.toxicity
    assert dict(added.attributes) == spec.attributes()

    assert client.toxics("pg") == [added]
    assert client.get_proxy("pg").toxics == (added,)
    assert client.get_toxic("pg", added.name) == added

    updated = client.update_toxic("pg", added.name, attributes=patch, toxicity=0.5)
    assert updated.toxicity == 0.5
    assert dict(updated.attributes) == {**spec.attributes(), **patch}  # merged, not replaced
    assert (updated.name, updated.type, updated.stream) == (added.name, added.type, added.stream)
    assert client.get_toxic("pg", added.name) == updated

    only_toxicity = client.update_toxic("pg", added.name, toxicity=0.25)
    assert dict(only_toxicity.attributes) == dict(updated.attributes)
    assert only_toxicity.toxicity == 0.25

    client.remove_toxic("pg", added.name)
    assert client.toxics("pg") == []
    with pytest.raises(NotFound, match="toxic not found"):
        client.get_toxic("pg", added.name)
    with pytest.raises(NotFound, match="toxic not found"):
        client.remove_toxic("pg", added.name)


def test_duplicate_toxic_is_409_and_named_toxics_coexist(client: ToxiproxyClient) -> None:
    client.create_proxy("pg", listen="127.0.0.1:0", upstream="127.0.0.1:5432")
    client.add_toxic("pg", Latency(10))
    with pytest.raises(Conflict, match="answered 409: toxic already exists"):
        client.add_toxic("pg", Latency(20))
    client.add_toxic("pg", Latency(20, name="second"))
    client.add_toxic("pg", Latency(30, stream="upstream"))
    names = [t.name for t in client.toxics("pg")]
    assert sorted(names) == ["latency_downstream", "latency_upstream", "second"]


def test_update_unknown_toxic_is_404(client: ToxiproxyClient) -> None:
    client.create_proxy("pg", listen="127.0.0.1:0", upstream="127.0.0.1:5432")
    with pytest.raises(NotFound, match=r"PATCH /proxies/pg/toxics/nope answered 404"):
        client.update_toxic("pg", "nope", toxicity=0.5)


def test_toxic_context_manager_removes_on_exception(client: ToxiproxyClient) -> None:
    client.create_proxy("pg", listen="127.0.0.1:0", upstream="127.0.0.1:5432")
    seen_inside: list[list[Toxic]] = []

    def block_that_fails() -> None:
        with client.toxic("pg", Timeout(0)):
            seen_inside.append(client.toxics("pg"))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        block_that_fails()
    assert [[t.name for t in toxics] for toxics in seen_inside] == [["timeout_downstream"]]
    assert client.toxics("pg") == []


def test_toxic_context_manager_tolerates_reset_inside(client: ToxiproxyClient) -> None:
    client.create_proxy("pg", listen="127.0.0.1:0", upstream="127.0.0.1:5432")
    with client.toxic("pg", Latency(5)):
        client.reset()  # removes the toxic: the 404 on exit is ignored
    assert client.toxics("pg") == []


def test_latency_toxic_delays_traffic(client: ToxiproxyClient, echo_upstream: str) -> None:
    proxy = client.create_proxy("echo", listen="127.0.0.1:0", upstream=echo_upstream)
    with client.toxic("echo", Latency(200)):
        start = time.monotonic()
        assert _roundtrip(proxy.listen_port, b"ping") == b"ping"
        assert time.monotonic() - start >= 0.2
    assert _roundtrip(proxy.listen_port, b"pong") == b"pong"


def test_limit_data_toxic_cuts_the_stream(client: ToxiproxyClient, echo_upstream: str) -> None:
    proxy = client.create_proxy("echo", listen="127.0.0.1:0", upstream=echo_upstream)
    with client.toxic("echo", LimitData(4)):
        assert _roundtrip(proxy.listen_port, b"12345678") == b"1234"


# --------------------------------------------------------------------------- reset, populate


def test_reset_removes_toxics_and_reenables(client: ToxiproxyClient) -> None:
    client.create_proxy("a", listen="127.0.0.1:0", upstream="127.0.0.1:1")
    client.create_proxy("b", listen="127.0.0.1:0", upstream="127.0.0.1:2")
    client.add_toxic("a", Latency(100))
    client.add_toxic("b", Bandwidth(1, stream="upstream"))
    client.disable("a")

    client.reset()

    proxies = client.proxies()
    assert set(proxies) == {"a", "b"}
    for proxy in proxies.values():
        assert proxy.enabled is True
        assert proxy.toxics == ()
        assert client.toxics(proxy.name) == []


def test_populate_creates_and_replaces(client: ToxiproxyClient) -> None:
    client.create_proxy("untouched", listen="127.0.0.1:0", upstream="127.0.0.1:9")
    result = client.populate(
        [
            ProxyConfig("pg", "127.0.0.1:0", "127.0.0.1:5432"),
            {"name": "redis", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:6379"},
            ProxyConfig("off", "127.0.0.1:0", "127.0.0.1:1", enabled=False),
        ]
    )
    assert [(p.name, p.enabled) for p in result] == [("pg", True), ("redis", True), ("off", False)]
    assert set(client.proxies()) == {"untouched", "pg", "redis", "off"}
    assert client.get_proxy("off").enabled is False

    replaced = client.populate([ProxyConfig("pg", "127.0.0.1:0", "127.0.0.1:6543")])
    assert [p.upstream for p in replaced] == ["127.0.0.1:6543"]
    assert client.get_proxy("pg").upstream == "127.0.0.1:6543"


def test_populate_empty_list(client: ToxiproxyClient) -> None:
    assert client.populate([]) == []


def test_populate_is_validated_before_applying(client: ToxiproxyClient) -> None:
    with pytest.raises(BadRequest, match="missing required field: upstream at proxy 2"):
        client.populate(
            [
                ProxyConfig("ok", "127.0.0.1:0", "127.0.0.1:1"),
                {"name": "broken", "listen": "127.0.0.1:0"},
            ]
        )
    assert client.proxies() == {}
