"""Typed client for the Toxiproxy 2.x HTTP API, built on httpx.

Toxiproxy (https://github.com/Shopify/toxiproxy) is a TCP proxy whose behaviour
("toxics": latency, bandwidth caps, resets, ...) is driven over a small JSON HTTP
API. This module wraps the whole API:

* ``ToxiproxyClient`` -- a synchronous client; every request carries a timeout.
* ``Proxy`` / ``Toxic`` -- frozen value objects parsed from server answers.
* ``ProxyConfig`` -- one entry of a server-side ``POST /populate``.
* ``Latency``, ``Bandwidth``, ``SlowClose``, ``Timeout``, ``ResetPeer``,
  ``Slicer``, ``LimitData`` -- validated toxic specifications (``ToxicSpec``).
* ``wait_until_ready`` -- poll ``GET /version`` until the server answers.

Every failure surfaces as a ``ToxiproxyError``; httpx exceptions are translated
at a single boundary (``ToxiproxyClient._request``) and chained with
``raise ... from exc``.

Exception hierarchy::

    ChaosError                          (chaos.errors) base of the whole toolkit
    └── ToxiproxyError                  every error raised by this module
        ├── ToxiproxyUnavailable        connection refused, timeout, other transport error
        └── ToxiproxyAPIError           the server answered a non-2xx status
            ├── BadRequest              400: missing field, invalid toxic type or stream
            ├── NotFound                404: proxy or toxic not found
            ├── Conflict                409: proxy or toxic already exists
            └── ServerError             5xx: e.g. 500 when the listen address is in use

Other statuses (403 for a browser User-Agent, 405 for a wrong method) raise a
plain ``ToxiproxyAPIError``. An unparseable success body raises the base
``ToxiproxyError``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from types import MappingProxyType, TracebackType
from typing import ClassVar, Literal, NoReturn
from urllib.parse import quote

import httpx

from chaos.errors import ChaosError

__all__ = [
    "AnyToxic",
    "BadRequest",
    "Bandwidth",
    "Conflict",
    "Latency",
    "LimitData",
    "NotFound",
    "Proxy",
    "ProxyConfig",
    "ResetPeer",
    "ServerError",
    "Slicer",
    "SlowClose",
    "Stream",
    "Timeout",
    "Toxic",
    "ToxicSpec",
    "ToxiproxyAPIError",
    "ToxiproxyClient",
    "ToxiproxyError",
    "ToxiproxyUnavailable",
    "known_attributes",
    "wait_until_ready",
]

_DEFAULT_BASE_URL = "http://127.0.0.1:8474"
# The server answers 403 to any User-Agent starting with "Mozilla/".
_USER_AGENT = "chaos-toolkit/1.0 (toxiproxy-client; httpx)"
_STREAMS: tuple[str, ...] = ("upstream", "downstream")

Stream = Literal["upstream", "downstream"]


# --------------------------------------------------------------------------- exceptions


class ToxiproxyError(ChaosError):
    """Base class of every error raised by this module (a ``chaos.errors.ChaosError``)."""


class ToxiproxyUnavailable(ToxiproxyError):
    """The server could not be reached: connection refused, timeout, broken transport."""


class ToxiproxyAPIError(ToxiproxyError):
    """The server answered with a non-2xx status.

    ``message`` is the server's ``error`` field when the body is the usual
    ``{"error": ..., "status": ...}`` JSON, else the raw body text, else the
    HTTP reason phrase.
    """

    def __init__(self, *, status: int, message: str, method: str, url: str) -> None:
        self.status = status
        self.message = message
        self.method = method
        self.url = url
        path = httpx.URL(url).path or url
        super().__init__(f"{method} {path} answered {status}: {message}")


class BadRequest(ToxiproxyAPIError):
    """400: malformed body, missing field, invalid toxic type or stream."""


class NotFound(ToxiproxyAPIError):
    """404: proxy or toxic not found."""


class Conflict(ToxiproxyAPIError):
    """409: proxy or toxic already exists."""


class ServerError(ToxiproxyAPIError):
    """5xx: e.g. 500 when a proxy's listen address is already in use."""


_STATUS_ERRORS: dict[int, type[ToxiproxyAPIError]] = {
    400: BadRequest,
    404: NotFound,
    409: Conflict,
}


def _error_class(status: int) -> type[ToxiproxyAPIError]:
    if status >= 500:
        return ServerError
    return _STATUS_ERRORS.get(status, ToxiproxyAPIError)


def _error_message(response: httpx.Response) -> str:
    # Toxiproxy writes its JSON error bodies through Go's http.Error, which forces
    # "Content-Type: text/plain", so parse the text whatever the content type says.
    text = response.text.strip()
    try:
        body: object = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, str) and error:
            return error
    return text or response.reason_phrase or "no response body"


# --------------------------------------------------------------------------- value objects


@dataclass(frozen=True)
class Toxic:
    """A toxic as reported by the server."""

    name: str
    type: str
    stream: Stream
    toxicity: float
    attributes: Mapping[str, object] = field(hash=False)

    @classmethod
    def from_json(cls, data: object) -> Toxic:
        """Build from one element of the server's toxic JSON."""
        obj = _expect_dict(data, "toxic")
        stream = _expect_str(obj, "stream", "toxic")
        if stream == "upstream":
            typed_stream: Stream = "upstream"
        elif stream == "downstream":
            typed_stream = "downstream"
        else:
            raise ToxiproxyError(f"toxic has an unknown stream {stream!r}")
        toxicity = obj.get("toxicity")
        if isinstance(toxicity, bool) or not isinstance(toxicity, int | float):
            raise ToxiproxyError(f"toxic field 'toxicity' is not a number: {toxicity!r}")
        attributes = obj.get("attributes", {})
        if attributes is None:
            attributes = {}
        attrs = _expect_dict(attributes, "toxic attributes")
        return cls(
            name=_expect_str(obj, "name", "toxic"),
            type=_expect_str(obj, "type", "toxic"),
            stream=typed_stream,
            toxicity=float(toxicity),
            attributes=MappingProxyType(dict(attrs)),
        )


@dataclass(frozen=True)
class Proxy:
    """A proxy as reported by the server, with its active toxics.

    ``listen`` is the address actually bound (``127.0.0.1:0`` is resolved to the
    chosen port) for enabled proxies; a proxy created disabled reports the
    address it was given.
    """

    name: str
    listen: str
    upstream: str
    enabled: bool
    toxics: tuple[Toxic, ...] = ()

    @property
    def listen_host(self) -> str:
        """Host part of ``listen`` (brackets of an IPv6 literal removed)."""
        host, _, _ = self.listen.rpartition(":")
        return host.strip("[]")

    @property
    def listen_port(self) -> int:
        """Port part of ``listen``."""
        _, _, port = self.listen.rpartition(":")
        return int(port)

    @classmethod
    def from_json(cls, data: object) -> Proxy:
        """Build from the server's proxy JSON (the stray ``Logger`` key is ignored)."""
        obj = _expect_dict(data, "proxy")
        enabled = obj.get("enabled")
        if not isinstance(enabled, bool):
            raise ToxiproxyError(f"proxy field 'enabled' is not a boolean: {enabled!r}")
        raw_toxics = obj.get("toxics") or []
        if not isinstance(raw_toxics, list):
            raise ToxiproxyError(f"proxy field 'toxics' is not a list: {raw_toxics!r}")
        return cls(
            name=_expect_str(obj, "name", "proxy"),
            listen=_expect_str(obj, "listen", "proxy"),
            upstream=_expect_str(obj, "upstream", "proxy"),
            enabled=enabled,
            toxics=tuple(Toxic.from_json(item) for item in raw_toxics),
        )


@dataclass(frozen=True)
class ProxyConfig:
    """One proxy definition for ``ToxiproxyClient.populate``."""

    name: str
    listen: str
    upstream: str
    enabled: bool = True

    def __post_init__(self) -> None:
        for attr in ("name", "upstream"):
            if not getattr(self, attr):
                raise ValueError(f"ProxyConfig.{attr} must not be empty")

    def to_payload(self) -> dict[str, object]:
        """The JSON object sent to the server."""
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
        }


def _expect_dict(data: object, what: str) -> dict[str, object]:
    if not isinstance(data, dict):
        raise ToxiproxyError(f"expected a JSON object for {what}, got {type(data).__name__}")
    return data


def _expect_str(obj: Mapping[str, object], key: str, what: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise ToxiproxyError(f"{what} field {key!r} is not a string: {value!r}")
    return value


def _check_toxicity(toxicity: float, owner: str) -> None:
    # NaN fails both comparisons, so it is rejected too. The server itself accepts
    # any float32 here (e.g. 2.0), hence the client-side check.
    if isinstance(toxicity, bool) or not 0.0 <= toxicity <= 1.0:
        raise ValueError(f"{owner}.toxicity must be within [0, 1], got {toxicity!r}")


# --------------------------------------------------------------------------- toxic specs


@dataclass(frozen=True, kw_only=True)
class ToxicSpec:
    """Base of the toxic specifications accepted by ``ToxiproxyClient.add_toxic``.

    Subclasses declare their typed, non-negative integer fields and map them to
    the server's attribute names in ``_ATTRIBUTES``. ``name`` defaults to
    ``f"{type}_{stream}"``, exactly as the server would name it.
    """

    TYPE: ClassVar[str] = ""
    _ATTRIBUTES: ClassVar[Mapping[str, str]] = {}

    stream: Stream = "downstream"
    toxicity: float = 1.0
    name: str | None = None

    def __post_init__(self) -> None:
        owner = type(self).__name__
        if not self.TYPE:
            raise TypeError(f"{owner} is abstract; use a concrete toxic such as Latency")
        if self.stream not in _STREAMS:
            raise ValueError(f"{owner}.stream must be one of {_STREAMS}, got {self.stream!r}")
        _check_toxicity(self.toxicity, owner)
        if self.name is not None and not self.name:
            raise ValueError(f"{owner}.name must be None or a non-empty string")
        for field_name in self._ATTRIBUTES:
            value: object = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{owner}.{field_name} must be an int, got {value!r}")
            if value < 0:
                raise ValueError(f"{owner}.{field_name} must be >= 0, got {value}")

    @property
    def type(self) -> str:
        """The server's toxic type name, e.g. ``"latency"``."""
        return self.TYPE

    @property
    def toxic_name(self) -> str:
        """The name the toxic gets on the server."""
        return self.name if self.name is not None else f"{self.type}_{self.stream}"

    def attributes(self) -> dict[str, object]:
        """The ``attributes`` object of the payload (also usable for ``update_toxic``)."""
        return {api: getattr(self, attr) for attr, api in self._ATTRIBUTES.items()}

    def to_payload(self) -> dict[str, object]:
        """The JSON object for ``POST /proxies/{proxy}/toxics``."""
        return {
            "name": self.toxic_name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": self.toxicity,
            "attributes": self.attributes(),
        }


@dataclass(frozen=True)
class Latency(ToxicSpec):
    """Delay data by ``latency_ms`` +/- ``jitter_ms`` milliseconds."""

    TYPE: ClassVar[str] = "latency"
    _ATTRIBUTES: ClassVar[Mapping[str, str]] = {"latency_ms": "latency", "jitter_ms": "jitter"}

    latency_ms: int
    jitter_ms: int = 0


@dataclass(frozen=True)
class Bandwidth(ToxicSpec):
    """Limit throughput to ``rate_kb`` kilobytes per second."""

    TYPE: ClassVar[str] = "bandwidth"
    _ATTRIBUTES: ClassVar[Mapping[str, str]] = {"rate_kb": "rate"}

    rate_kb: int


@dataclass(frozen=True)
class SlowClose(ToxicSpec):
    """Delay closing the connection by ``delay_ms`` milliseconds."""

    TYPE: ClassVar[str] = "slow_close"
    _ATTRIBUTES: ClassVar[Mapping[str, str]] = {"delay_ms": "delay"}

    delay_ms: int


@dataclass(frozen=True)
class Timeout(ToxicSpec):
    """Stop all data and close after ``timeout_ms``; 0 blackholes until removed."""

    TYPE: ClassVar[str] = "timeout"
    _ATTRIBUTES: ClassVar[Mapping[str, str]] = {"timeout_ms": "timeout"}

    timeout_ms: int


@dataclass(frozen=True)
class ResetPeer(ToxicSpec):
    """Reset the connection (TCP RST) after ``timeout_ms``; 0 resets immediately."""

    TYPE: ClassVar[str] = "reset_peer"
    _ATTRIBUTES: ClassVar[Mapping[str, str]] = {"timeout_ms": "timeout"}

    timeout_ms: int = 0


@dataclass(frozen=True)
class Slicer(ToxicSpec):
    """Slice data into ~``average_size`` byte packets, ``delay_us`` microseconds apart."""

    TYPE: ClassVar[str] = "slicer"
    _ATTRIBUTES: ClassVar[Mapping[str, str]] = {
        "average_size": "average_size",
        "size_variation": "size_variation",
        "delay_us": "delay",
    }

    average_size: int
    size_variation: int
    delay_us: int


@dataclass(frozen=True)
class LimitData(ToxicSpec):
    """Close the connection once ``bytes`` bytes have been transmitted."""

    TYPE: ClassVar[str] = "limit_data"
    _ATTRIBUTES: ClassVar[Mapping[str, str]] = {"bytes": "bytes"}

    bytes: int


@dataclass(frozen=True)
class AnyToxic(ToxicSpec):
    """Any toxic by its server type name, with any attributes: a toxic type Toxiproxy
    adds later works without a release of this client (the server validates it)."""

    TYPE: ClassVar[str] = "any"

    toxic_type: str
    attrs: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.toxic_type, str) or not self.toxic_type:
            raise ValueError(
                f"AnyToxic.toxic_type must be a non-empty string, got {self.toxic_type!r}"
            )

    @property
    def type(self) -> str:
        return self.toxic_type

    def attributes(self) -> dict[str, object]:
        return dict(self.attrs)


_KNOWN_ATTRIBUTES: Mapping[str, frozenset[str]] = {
    cls.TYPE: frozenset(cls._ATTRIBUTES.values())
    for cls in (Latency, Bandwidth, SlowClose, Timeout, ResetPeer, Slicer, LimitData)
}


def known_attributes(toxic_type: str) -> frozenset[str] | None:
    """The attribute names of a toxic type Toxiproxy 2.12 knows; None for other types."""
    return _KNOWN_ATTRIBUTES.get(toxic_type)


# --------------------------------------------------------------------------- client


def _segment(name: str) -> str:
    return quote(name, safe="")


def _parse_version(response: httpx.Response) -> str:
    # v2.12 answers {"version": "2.12.0"} with a JSON content type; older servers
    # answered the bare version as text/plain.
    text = response.text.strip()
    try:
        body: object = json.loads(text)
    except ValueError:
        return text
    if isinstance(body, dict):
        version = body.get("version")
        if isinstance(version, str):
            return version
    if isinstance(body, str):
        return body
    return text


class ToxiproxyClient:
    """Synchronous client for the Toxiproxy HTTP API.

    Use as a context manager (or call ``close()``). Every request uses
    ``timeout`` seconds for connect/read/write/pool. ``transport`` lets tests
    inject ``httpx.MockTransport``.
    """

    def __init__(
        self,
        base_url: str = _DEFAULT_BASE_URL,
        *,
        timeout: float = 5.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._client = httpx.Client(
            base_url=self._base_url,
            timeout=httpx.Timeout(timeout),
            transport=transport,
            headers={"User-Agent": _USER_AGENT, "Accept": "application/json"},
            follow_redirects=False,
        )

    # -- lifecycle -------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self._base_url

    @property
    def is_closed(self) -> bool:
        return self._client.is_closed

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ToxiproxyClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ToxiproxyClient({self._base_url!r}, timeout={self._timeout!r})"

    # -- the single httpx boundary ---------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        payload: object = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Send one request; translate every httpx error and non-2xx status."""
        effective = self._timeout if timeout is None else timeout
        try:
            response = self._client.request(
                method, path, json=payload, timeout=httpx.Timeout(effective)
            )
        except httpx.TimeoutException as exc:
            raise ToxiproxyUnavailable(
                f"{method} {path} to {self._base_url} timed out after {effective:g}s "
                f"({type(exc).__name__})"
            ) from exc
        except httpx.TransportError as exc:
            raise ToxiproxyUnavailable(
                f"{method} {path} to {self._base_url} failed: {type(exc).__name__}: {exc}"
            ) from exc
        except httpx.HTTPError as exc:
            raise ToxiproxyError(f"{method} {path} failed: {type(exc).__name__}: {exc}") from exc
        if not response.is_success:
            self._raise_api_error(method, response)
        return response

    @staticmethod
    def _raise_api_error(method: str, response: httpx.Response) -> NoReturn:
        cls = _error_class(response.status_code)
        raise cls(
            status=response.status_code,
            message=_error_message(response),
            method=method,
            url=str(response.request.url),
        )

    def _json(self, method: str, path: str, *, payload: object = None) -> object:
        response = self._request(method, path, payload=payload)
        try:
            body: object = json.loads(response.text)
        except ValueError as exc:
            raise ToxiproxyError(
                f"{method} {path} answered {response.status_code} with a non-JSON body: "
                f"{response.text[:200]!r}"
            ) from exc
        return body

    # -- server ----------------------------------------------------------------------

    def version(self) -> str:
        """``GET /version``: the server version (``"git"`` for untagged builds)."""
        return _parse_version(self._request("GET", "/version"))

    def reset(self) -> None:
        """``POST /reset``: re-enable every proxy and remove every toxic."""
        self._request("POST", "/reset")

    def populate(self, proxies: Iterable[ProxyConfig | Mapping[str, object]]) -> list[Proxy]:
        """``POST /populate``: create or replace proxies in one server-side call.

        The server validates the whole list before applying any of it. Proxies
        not named in the list are left alone; an existing proxy whose config
        differs is replaced (and loses its toxics).
        """
        payload = [p.to_payload() if isinstance(p, ProxyConfig) else dict(p) for p in proxies]
        body = _expect_dict(self._json("POST", "/populate", payload=payload), "populate")
        items = body.get("proxies") or []  # the server sends null for an empty list
        if not isinstance(items, list):
            raise ToxiproxyError(f"populate field 'proxies' is not a list: {items!r}")
        return [Proxy.from_json(item) for item in items]

    # -- proxies ---------------------------------------------------------------------

    def proxies(self) -> dict[str, Proxy]:
        """``GET /proxies``: every proxy by name."""
        body = _expect_dict(self._json("GET", "/proxies"), "proxy index")
        return {name: Proxy.from_json(item) for name, item in body.items()}

    def get_proxy(self, name: str) -> Proxy:
        """``GET /proxies/{name}``."""
        return Proxy.from_json(self._json("GET", f"/proxies/{_segment(name)}"))

    def create_proxy(self, name: str, *, listen: str, upstream: str, enabled: bool = True) -> Proxy:
        """``POST /proxies``; ``listen="127.0.0.1:0"`` lets the server pick a port."""
        payload = {"name": name, "listen": listen, "upstream": upstream, "enabled": enabled}
        return Proxy.from_json(self._json("POST", "/proxies", payload=payload))

    def delete_proxy(self, name: str) -> None:
        """``DELETE /proxies/{name}``."""
        self._request("DELETE", f"/proxies/{_segment(name)}")

    def update_proxy(
        self,
        name: str,
        *,
        listen: str | None = None,
        upstream: str | None = None,
        enabled: bool | None = None,
    ) -> Proxy:
        """``PATCH /proxies/{name}`` with only the fields given."""
        payload: dict[str, object] = {}
        if listen is not None:
            payload["listen"] = listen
        if upstream is not None:
            payload["upstream"] = upstream
        if enabled is not None:
            payload["enabled"] = enabled
        return Proxy.from_json(self._json("PATCH", f"/proxies/{_segment(name)}", payload=payload))

    def enable(self, name: str) -> Proxy:
        """Start listening again."""
        return self.update_proxy(name, enabled=True)

    def disable(self, name: str) -> Proxy:
        """Close the listener and every open connection of the proxy."""
        return self.update_proxy(name, enabled=False)

    # -- toxics ----------------------------------------------------------------------

    def toxics(self, proxy: str) -> list[Toxic]:
        """``GET /proxies/{proxy}/toxics``: upstream toxics first, then downstream."""
        body = self._json("GET", f"/proxies/{_segment(proxy)}/toxics")
        if not isinstance(body, list):
            raise ToxiproxyError(f"expected a JSON list of toxics, got {type(body).__name__}")
        return [Toxic.from_json(item) for item in body]

    def add_toxic(self, proxy: str, toxic: ToxicSpec) -> Toxic:
        """``POST /proxies/{proxy}/toxics`` (the server answers 200, not 201)."""
        path = f"/proxies/{_segment(proxy)}/toxics"
        return Toxic.from_json(self._json("POST", path, payload=toxic.to_payload()))

    def get_toxic(self, proxy: str, name: str) -> Toxic:
        """``GET /proxies/{proxy}/toxics/{name}``."""
        return Toxic.from_json(self._json("GET", self._toxic_path(proxy, name)))

    def update_toxic(
        self,
        proxy: str,
        name: str,
        *,
        attributes: Mapping[str, int | float] | None = None,
        toxicity: float | None = None,
    ) -> Toxic:
        """``PATCH /proxies/{proxy}/toxics/{name}``.

        Attributes not given keep their value (the server merges them), as does
        ``toxicity`` when ``None``. Type and stream cannot be changed.
        """
        payload: dict[str, object] = {}
        if attributes is not None:
            payload["attributes"] = dict(attributes)
        if toxicity is not None:
            _check_toxicity(toxicity, "update_toxic")
            payload["toxicity"] = toxicity
        if not payload:
            raise ValueError("update_toxic needs attributes and/or toxicity")
        return Toxic.from_json(self._json("PATCH", self._toxic_path(proxy, name), payload=payload))

    def remove_toxic(self, proxy: str, name: str) -> None:
        """``DELETE /proxies/{proxy}/toxics/{name}``."""
        self._request("DELETE", self._toxic_path(proxy, name))

    @contextmanager
    def toxic(self, proxy: str, spec: ToxicSpec) -> Iterator[Toxic]:
        """Add a toxic for the duration of a ``with`` block.

        The toxic is always removed on exit, even when the block raises; a 404 on
        removal (toxic or proxy already gone, e.g. after ``reset()``) is ignored.
        """
        added = self.add_toxic(proxy, spec)
        try:
            yield added
        finally:
            with suppress(NotFound):
                self.remove_toxic(proxy, added.name)

    @staticmethod
    def _toxic_path(proxy: str, name: str) -> str:
        return f"/proxies/{_segment(proxy)}/toxics/{_segment(name)}"


# --------------------------------------------------------------------------- readiness


def wait_until_ready(
    base_url: str,
    *,
    timeout: float,
    interval: float = 0.05,
    transport: httpx.BaseTransport | None = None,
) -> str:
    """Poll ``GET /version`` until it answers; return the version.

    Each attempt is bounded by the time left before the deadline. Raises
    ``ToxiproxyUnavailable`` (with the elapsed seconds and the last error) if the
    server has not answered within ``timeout`` seconds. A server that answers
    with an error status raises ``ToxiproxyAPIError`` at once: retrying will not
    change that.
    """
    if not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
    if interval < 0 or math.isnan(interval):
        raise ValueError(f"interval must be >= 0 seconds, got {interval!r}")
    start = time.monotonic()
    deadline = start + timeout
    attempts = 0
    last_error: ToxiproxyUnavailable | None = None
    with ToxiproxyClient(base_url, timeout=timeout, transport=transport) as client:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            attempts += 1
            try:
                response = client._request("GET", "/version", timeout=max(remaining, 0.001))
            except ToxiproxyUnavailable as exc:
                last_error = exc
            else:
                return _parse_version(response)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            time.sleep(min(interval, remaining))
    elapsed = time.monotonic() - start
    detail = f"; last error: {last_error}" if last_error is not None else ""
    raise ToxiproxyUnavailable(
        f"Toxiproxy at {base_url} not ready after {elapsed:.2f}s "
        f"({attempts} attempt{'s' if attempts != 1 else ''}, timeout {timeout:g}s){detail}"
    ) from last_error
