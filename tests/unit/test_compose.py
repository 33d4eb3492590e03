"""docker-compose.ci.yml agrees with the code: proxy name, ports, settings, pinned images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from app.settings import Settings
from chaos.infra.stack import CHAOS_SERVICE_SETTINGS, PROXY_NAME

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.ci.yml").read_text())
    return data


def services() -> dict[str, Any]:
    svc: dict[str, Any] = compose()["services"]
    return svc


def toxiproxy_config() -> list[dict[str, Any]]:
    mount = next(v for v in services()["toxiproxy"]["volumes"] if v.endswith("toxiproxy.json:ro"))
    host_path = mount.split(":")[0]
    data: list[dict[str, Any]] = json.loads((ROOT / host_path).read_text())
    return data


def test_images_are_pinned() -> None:
    for name, svc in services().items():
        if "image" in svc:
            tag = svc["image"].rpartition(":")[2]
            assert tag != "latest", name
            assert any(c.isdigit() for c in tag), name
    assert services()["postgres"]["image"].startswith("postgres:15.")
    assert services()["toxiproxy"]["image"].startswith("ghcr.io/shopify/toxiproxy:2.12")


def test_toxiproxy_declares_the_postgres_proxy() -> None:
    (proxy,) = toxiproxy_config()
    assert proxy["name"] == PROXY_NAME
    assert proxy["upstream"] == "postgres:5432"
    assert proxy["enabled"] is True


def test_service_reaches_the_database_only_through_toxiproxy() -> None:
    env = services()["app"]["environment"]
    (proxy,) = toxiproxy_config()
    listen_port = proxy["listen"].rpartition(":")[2]
    assert env["DB_HOST"] == "toxiproxy"
    assert env["DB_PORT"] == listen_port
    assert "DATABASE_URL" not in env
    assert services()["app"]["depends_on"]["toxiproxy"]["condition"] == "service_healthy"


def test_environment_names_are_settings_the_service_reads() -> None:
    fields = {name.upper() for name in Settings.model_fields}
    for key in services()["app"]["environment"]:
        assert key in fields, key


def test_limits_match_the_local_chaos_stack() -> None:
    env = services()["app"]["environment"]
    for key, value in CHAOS_SERVICE_SETTINGS.items():
        assert env[key] == value, key


def test_ports_published_for_an_external_stack_run() -> None:
    published = {
        name: [p.rsplit(":", 1)[1] for p in svc.get("ports", [])]
        for name, svc in services().items()
    }
    assert published["app"] == [services()["app"]["environment"]["SERVER_PORT"]]
    assert "8474" in published["toxiproxy"]
    assert "5432" in published["postgres"]


def test_every_service_has_a_healthcheck() -> None:
    for name, svc in services().items():
        assert "healthcheck" in svc or (
            name == "app" and "HEALTHCHECK" in (ROOT / "Dockerfile").read_text()
        ), name


def test_schema_is_mounted_for_postgres_init() -> None:
    volumes = services()["postgres"]["volumes"]
    assert any(v.startswith("./app/schema.sql:/docker-entrypoint-initdb.d/") for v in volumes)
